"""The released GPEN checkpoints, where to get them and where they live on disk."""

import os
from dataclasses import dataclass
from pathlib import Path

from .arch.gpen.config import GPENConfig

OFFICIAL_BUCKET = "https://public-vigen-video.oss-cn-shanghai.aliyuncs.com/robin/models/"
MODELSCOPE_HIRES = ("https://www.modelscope.cn/models/iic/"
                    "cv_gpen_image-portrait-enhancement-hires/resolve/master/")
MODELS_DIR_VARIABLE = "GPEN_MODELS_DIR"
DEFAULT_MODEL = "GPEN-BFR-512"
CHECKPOINT_SUFFIXES = (".pth", ".pt", ".ckpt", ".bin", ".safetensors")  # what a checkpoint is
AUTO_MODEL = "auto"  # each face through the release its size calls for (releases.py)


@dataclass(frozen=True)
class ModelInfo:
    name: str
    config: GPENConfig  # the release's hyper-parameters, as its tensors' shapes give them
    urls: tuple
    sha256: str = None  # published for the 512 release only
    bytes: int = None

    @property
    def size(self):
        return self.config.size

    @property
    def filename(self):
        return self.name + ".pth"


KNOWN_MODELS = {info.name: info for info in (
    ModelInfo("GPEN-BFR-256", GPENConfig(256, 512, 8, 1, 0.5),
              (OFFICIAL_BUCKET + "GPEN-BFR-256.pth",)),
    ModelInfo("GPEN-BFR-512", GPENConfig(512, 512, 8, 2, 1.0),
              (OFFICIAL_BUCKET + "GPEN-BFR-512.pth",),
              sha256="f1002c41add95b0decad69604d80455576f7187dd99ca16bd611bcfd44c10b51",
              bytes=284_085_738),
    # The bucket's 1024 link is reported dead; ModelScope hosts the official hires files.
    ModelInfo("GPEN-BFR-1024", GPENConfig(1024, 512, 8, 2, 1.0),
              (MODELSCOPE_HIRES + "pytorch_model.pt", OFFICIAL_BUCKET + "GPEN-BFR-1024.pth")),
    ModelInfo("GPEN-BFR-2048", GPENConfig(2048, 512, 8, 2, 1.0),
              (OFFICIAL_BUCKET + "GPEN-BFR-2048.pth", MODELSCOPE_HIRES + "pytorch_model-2048.pt")),
)}
RELEASE_CONFIGS = {info.size: info.config for info in KNOWN_MODELS.values()}
RELEASE_SIZES = tuple(sorted(RELEASE_CONFIGS))
# Under auto, how much larger than its release a face may be pasted (README, "model: auto"):
# a real face enlarged 1.5x keeps 34 dB of its detail (36 at 1.25x, 32 at 2x), and a
# portrait's face 700 px wide goes to GPEN-BFR-1024, where 1x would send it to 2048 at twice
# the time.
ENLARGEMENT = 1.5


def release_for(side, sizes=RELEASE_SIZES):
    """Under auto, the smallest of `sizes` whose output, enlarged at most ENLARGEMENT times,
    covers a face pasted `side` pixels wide (releases.pasted_side); the largest beyond."""
    return next((size for size in sorted(sizes) if size * ENLARGEMENT >= side), max(sizes))


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
                  if path.is_file() and path.suffix.lower() in CHECKPOINT_SUFFIXES)


class UnknownModelError(ValueError):
    """A model name that is neither a release nor a checkpoint file the caller may load."""


@dataclass(frozen=True)
class ModelRef:
    """A model to load: its name as users see it, where its file is (or will be downloaded
    to), and, for a release, where it comes from."""
    name: str
    path: Path
    release: ModelInfo = None
    folders: tuple = ()  # for auto: the models folders its releases are looked for in

    @property
    def auto(self):
        return self.name == AUTO_MODEL


def release_named(name):
    """The release a name means, case-insensitively: 'GPEN-BFR-512', its file name, '512' or
    'GPEN-512'; None for any other name."""
    wanted = str(name).strip().upper().replace("_", "-")
    for info in KNOWN_MODELS.values():
        if wanted in (info.name.upper(), info.filename.upper(), str(info.size), f"GPEN-{info.size}"):
            return info
    return None


MAX_NAME_CHARS = 255  # longer than any file name a file system takes
MAX_PATH_CHARS = 4096  # longer than any path Linux takes


def model_folders(models_dirs):
    """A models folder, or several (searched in order), as a list of Paths."""
    if isinstance(models_dirs, (str, os.PathLike)):
        return [Path(models_dirs)]
    folders = [Path(folder) for folder in models_dirs]
    if not folders:
        raise ValueError("no models folder given")
    return folders


def resolve_model(name, models_dirs, allow_paths=False):
    """The one way every host turns a model name into a ModelRef: "auto" (every release, each
    face through the one its size calls for), a release (by any name `release_named` takes),
    or a checkpoint file inside a models folder. `models_dirs`: one
    folder or several, searched in order; a release found in none is to be downloaded into
    the first. A path elsewhere only where the caller is the local user (`allow_paths`: the
    CLI and the Python API)."""
    text = str(name).strip()
    folders = model_folders(models_dirs)
    limit = MAX_PATH_CHARS if allow_paths else MAX_NAME_CHARS
    if not text or len(text) > limit or (not allow_paths and len(os.fsencode(text)) > limit):
        raise UnknownModelError(f"model name must be 1 to {limit} characters ({limit} bytes "
                                f"as a file name), got {len(text)}")
    if text.lower() == AUTO_MODEL:
        return ModelRef(AUTO_MODEL, folders[0], folders=tuple(folders))
    release = release_named(text)
    if release is not None:
        places = [folder / release.filename for folder in folders]
        return ModelRef(release.name, next((path for path in places if _is_file(path)),
                                           places[0]), release)
    if Path(text).name == text and Path(text).suffix.lower() in CHECKPOINT_SUFFIXES:
        for folder in folders:
            if _is_file(folder / text):
                return ModelRef(text, folder / text)
    if allow_paths:
        path = Path(text).expanduser()
        if _is_file(path):
            return ModelRef(str(path), path)
    known = ", ".join(dict.fromkeys(listing.name for folder in folders
                                    for listing in list_models(folder)))
    where = f"a checkpoint file, or a file in {', '.join(map(str, folders))}" if allow_paths \
        else "a file in the models folder"
    raise UnknownModelError(f"unknown model '{text}': neither a release nor {where}; choose "
                            f"one of {known}")


def _is_file(path):
    """Whether `path` is a file; False for a name no file system takes (too long, a NUL)."""
    try:
        return path.is_file()
    except (OSError, ValueError):
        return False


@dataclass(frozen=True)
class ModelListing:
    name: str
    size: int         # crop size; None for auto, and a file that is not a release (known once
    #                   loaded)
    installed: bool
    file: str         # relative to the models folder; "" for auto
    urls: tuple = ()


NOT_DOWNLOADED = " (downloaded on first use)"  # how a host's model list marks a missing release


def shown_name(name, installed):
    """A model's name as a host's list shows it: marked if it is a release not yet here."""
    return name if installed else name + NOT_DOWNLOADED


def unmarked(name):
    """A model's name as a host's list showed it, back to the name itself."""
    return str(name).removesuffix(NOT_DOWNLOADED)


def list_models(models_dir):
    """The releases, installed or not, "auto" (which downloads the ones it needs), then
    every other checkpoint file in the folder."""
    folder = Path(models_dir)
    listings = [ModelListing(info.name, info.size, (folder / info.filename).is_file(),
                             info.filename, info.urls) for info in KNOWN_MODELS.values()]
    listings.append(ModelListing(AUTO_MODEL, None, True, ""))
    release_files = {info.filename for info in KNOWN_MODELS.values()}
    listings += [ModelListing(path.name, None, True, path.name)
                 for path in installed_checkpoints(folder) if path.name not in release_files]
    return listings
