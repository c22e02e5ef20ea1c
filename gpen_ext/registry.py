"""The released GPEN checkpoints, where to get them and where they live on disk."""

import os
from dataclasses import dataclass
from pathlib import Path

from .checkpoints import CHECKPOINT_SUFFIXES

OFFICIAL_BUCKET = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/"
MODELSCOPE_HIRES = ("https://www.modelscope.cn/models/iic/"
                    "cv_gpen_image-portrait-enhancement-hires/resolve/master/")
MODELS_DIR_VARIABLE = "GPEN_MODELS_DIR"
DEFAULT_MODEL = "GPEN-BFR-512"


@dataclass(frozen=True)
class ModelInfo:
    name: str
    size: int
    urls: tuple
    sha256: str = None  # published for the 512 release only
    bytes: int = None

    @property
    def filename(self):
        return self.name + ".pth"


KNOWN_MODELS = {info.name: info for info in (
    ModelInfo("GPEN-BFR-256", 256, (OFFICIAL_BUCKET + "GPEN-BFR-256.pth",)),
    ModelInfo("GPEN-BFR-512", 512, (OFFICIAL_BUCKET + "GPEN-BFR-512.pth",),
              sha256="f1002c41add95b0decad69604d80455576f7187dd99ca16bd611bcfd44c10b51",
              bytes=284_085_738),
    # The bucket's 1024 link is reported dead; ModelScope hosts the official hires files.
    ModelInfo("GPEN-BFR-1024", 1024, (MODELSCOPE_HIRES + "pytorch_model.pt",
                                      OFFICIAL_BUCKET + "GPEN-BFR-1024.pth")),
    ModelInfo("GPEN-BFR-2048", 2048, (OFFICIAL_BUCKET + "GPEN-BFR-2048.pth",
                                      MODELSCOPE_HIRES + "pytorch_model-2048.pt")),
)}


def default_models_dir():
    """$GPEN_MODELS_DIR, else the user's cache folder (XDG on Linux)."""
    if os.environ.get(MODELS_DIR_VARIABLE):
        return Path(os.environ[MODELS_DIR_VARIABLE]).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or (
        os.environ.get("LOCALAPPDATA") if os.name == "nt" else None) or Path.home() / ".cache"
    return Path(cache) / "gpen"


def installed_checkpoints(models_dir):
    """Checkpoint files in a models folder, known releases and others, sorted by name."""
    folder = Path(models_dir)
    if not folder.is_dir():
        return []
    return sorted(path for path in folder.iterdir()
                  if path.is_file() and path.suffix in CHECKPOINT_SUFFIXES)


def model_path(name, models_dir):
    return Path(models_dir) / KNOWN_MODELS[name].filename


def resolve_model_name(name):
    """The registry entry for a name, case-insensitively; also accepts '512' or 'GPEN-512'."""
    wanted = name.strip().upper().replace("_", "-")
    for info in KNOWN_MODELS.values():
        if wanted in (info.name.upper(), str(info.size), f"GPEN-{info.size}"):
            return info
    return None


def model_in_folder(name, models_dir):
    """What a host may load for a model name: a registry name as is, or a checkpoint file of
    that name inside the models folder. Anything else (a path elsewhere) is refused."""
    name = str(name)
    if name in KNOWN_MODELS:
        return name
    candidate = Path(models_dir) / name
    if Path(name).name == name and candidate.suffix in CHECKPOINT_SUFFIXES and candidate.is_file():
        return candidate
    known = ", ".join([*KNOWN_MODELS, *(p.name for p in installed_checkpoints(models_dir))])
    raise ValueError(f"unknown model '{name}': choose one of {known}")
