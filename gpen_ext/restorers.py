"""The one way to build a ready FaceRestorer, for the command line, the Python API and every
host: the model name is resolved over the models folders (registry.resolve_model), a missing
release downloaded (if allowed), the network loaded, and the pipeline handed its face models."""

from .checkpoints import load_model
from .download import ensure_model
from .face_models import FaceModels
from .inference import resolve_device
from .options import MODEL, RestoreOptions
from .pipeline import FaceRestorer
from .registry import ModelRef, default_models_dir, model_folders, resolve_model


def load_restorer(model=MODEL.default, models_dir=None, device="auto", precision="auto",
                  download=True, face_models_dir=None, allow_paths=True):
    """A FaceRestorer on `device` for `model`: a release name ("GPEN-BFR-512", "512"), a
    checkpoint file in `models_dir` (a folder or a list of folders searched in order; default
    $GPEN_MODELS_DIR, else the user's cache folder), or, unless `allow_paths` is off (hosts
    serving others), any checkpoint path; or a ModelRef already resolved. facexlib's
    detection and parsing weights live in `face_models_dir`, by default the first models
    folder."""
    folders = model_folders(models_dir if models_dir is not None else default_models_dir())
    reference = model if isinstance(model, ModelRef) else \
        resolve_model(model, folders, allow_paths)
    network = load_model(ensure_model(reference, download=download))
    return FaceRestorer(network, FaceModels(face_models_dir or folders[0], download),
                        resolve_device(device), precision)


def fetch_models(model=MODEL.default, models_dir=None, options=RestoreOptions(), detecting=True,
                 download=True, face_models=True):
    """Put in the models folder, downloading and verifying if allowed, every file a restorer
    for `model` and `options` will read (the face models' too, unless no face is to be
    restored), without loading any: for workers elsewhere that load them themselves."""
    folders = model_folders(models_dir if models_dir is not None else default_models_dir())
    ensure_model(resolve_model(model, folders, allow_paths=True), download=download)
    if face_models:
        FaceModels(folders[0], download).fetch(options, detecting)
