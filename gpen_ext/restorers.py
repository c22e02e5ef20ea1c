"""The one way to build a ready FaceRestorer, for the command line, the Python API and every
host: the model name is resolved over the models folders (registry.resolve_model), a missing
release downloaded (if allowed), the network loaded, and the pipeline handed its face models.
Under "auto" the releases are loaded, and downloaded, as faces need them (releases.py)."""

import logging

from .checkpoints import CheckpointError, load_model
from .download import ensure_model
from .face_models import FaceModels
from .inference import resolve_device
from .options import MODEL, RestoreOptions
from .pipeline import FaceRestorer
from .registry import (KNOWN_MODELS, ModelRef, default_models_dir, model_folders,
                       resolve_model)
from .releases import ReleaseNetworks

log = logging.getLogger(__name__)


def load_restorer(model=MODEL.default, models_dir=None, device="auto", precision="auto",
                  download=True, face_models_dir=None, allow_paths=True, status=None,
                  face_models=None):
    """A FaceRestorer on `device` for `model`: "auto", a release name ("GPEN-BFR-512", "512"),
    a checkpoint file in `models_dir` (a folder or a list of folders searched in order;
    default $GPEN_MODELS_DIR, else the user's cache folder), or, unless `allow_paths` is off
    (hosts serving others), any checkpoint path; or a ModelRef already resolved. facexlib's
    detection and parsing weights live in `face_models_dir`, by default the first models
    folder, unless `face_models` (a FaceModels, e.g. a host's, already finding faces) is
    given. `status(text)`: told (besides the log) when auto loads or downloads a release."""
    folders = model_folders(models_dir if models_dir is not None else default_models_dir())
    reference = model if isinstance(model, ModelRef) else \
        resolve_model(model, folders, allow_paths)
    device = resolve_device(device)
    if reference.auto:
        network = ReleaseNetworks(_release_loader(reference.folders, download, status),
                                  _installed_releases(reference.folders), device, precision)
    else:
        network = load_model(ensure_model(reference, download=download))
    face_models = face_models or FaceModels(face_models_dir or folders[0], download)
    return FaceRestorer(network, face_models, device, precision)


def _release_loader(folders, download, status=None):
    """load(size) for ReleaseNetworks: the release's network, downloaded into the first
    models folder if missing and allowed."""
    def load(size):
        reference = resolve_model(str(size), folders)
        text = f"GPEN: auto: {'loading' if reference.path.is_file() else 'downloading'} " \
            f"{reference.name} for the faces that need it"
        log.info("%s", text)
        if status is not None:
            status(text)
        path = ensure_model(reference, download=download)
        network = load_model(path)
        if network.size != size:  # a file of another size saved under the release's name
            raise CheckpointError(f"{path} holds a {network.size}-pixel network, not "
                                  f"{reference.name}")
        return network
    return load


def _installed_releases(folders):
    return {info.size for info in KNOWN_MODELS.values()
            if any((folder / info.filename).is_file() for folder in folders)}


def fetch_models(model=MODEL.default, models_dir=None, options=RestoreOptions(), detecting=True,
                 download=True, face_models=True):
    """Put in the models folder, downloading and verifying if allowed, every file a restorer
    for `model` and `options` will read (under auto, every release: a face of any size may
    need any), the face models' too unless no face is to be restored, without loading any:
    for workers elsewhere that load them themselves."""
    folders = model_folders(models_dir if models_dir is not None else default_models_dir())
    reference = resolve_model(model, folders, allow_paths=True)
    for needed in [resolve_model(name, folders) for name in KNOWN_MODELS] if reference.auto \
            else [reference]:
        ensure_model(needed, download=download)
    if face_models:
        FaceModels(folders[0], download).fetch(options, detecting)
