"""A ready FaceRestorer from a model name: the layer that owns the models folders resolves the
name, downloads a missing release (if allowed), loads the network and hands the pipeline its
face models."""

from pathlib import Path

from .checkpoints import load_model
from .download import ensure_model
from .face_models import FaceModels
from .inference import resolve_device
from .pipeline import FaceRestorer
from .registry import default_models_dir, resolve_model


def load_restorer(model="GPEN-BFR-512", models_dir=None, device="auto", precision="auto",
                  download=True, face_models_dir=None, allow_paths=True):
    """A FaceRestorer for `model`: a release name ("GPEN-BFR-512", "512"), a checkpoint file
    in `models_dir` (default: $GPEN_MODELS_DIR, else the user's cache folder) or, unless
    `allow_paths` is off (hosts serving others), any checkpoint path. facexlib's detection and
    parsing weights live in `face_models_dir`, by default the same folder."""
    folder = Path(models_dir) if models_dir is not None else default_models_dir()
    path = ensure_model(resolve_model(model, folder, allow_paths), download=download)
    return FaceRestorer(load_model(path), FaceModels(face_models_dir or folder, download),
                        resolve_device(device), precision)
