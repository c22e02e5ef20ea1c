"""GPEN as a long-lived service inside a host program: one cached restorer, moved and freed
the way the host wants, and a restore call that never loses the caller's image. The face
models (detector, parser) are the service's, lent to each restorer it loads, so that faces are
found without any GPEN network."""

import gc
import logging
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..face_models import FaceModels
from ..inference import resolve_precision
from ..options import FACES_PER_IMAGE, PRECISION
from ..pipeline import detect_faces
from ..registry import resolve_model
from ..restorers import load_restorer
from ..results import counted

log = logging.getLogger(__name__)


def _nothing():
    return None


@dataclass
class HostEnvironment:
    """What a host decides: where models live, which device, how to free memory."""
    models_dir: Callable[[], Path]        # GPEN checkpoints
    face_models_dir: Callable[[], Path]   # facexlib detection/parsing weights
    device: Callable[[], torch.device]
    unload_after_use: Callable[[], bool] = lambda: False
    collect_garbage: Callable[[], None] = _nothing   # e.g. the host's torch_gc
    free_memory: Callable[[], None] = _nothing       # e.g. Forge's prepare_free_memory
    faces_per_image: Callable[[], int] = lambda: FACES_PER_IMAGE.default  # work an image may ask
    status: Callable[[str], None] = lambda text: None  # e.g. the host's progress text


class ConsoleProgress:
    """A host's progress callback (or none) with the console lines a user waiting on a CPU
    wants: the faces to restore and where they run, each batch done with the time a face
    takes; the host's callback is called after, so that its stop is honoured."""

    def __init__(self, progress, batch_size, ran_on):
        self.progress, self.batch_size, self.ran_on = progress, batch_size, ran_on
        self.started, self.announced, self.logged = time.monotonic(), 0, 0

    def __call__(self, progress):
        if progress.stage == "faces found" and progress.chosen > self.announced:
            log.info("GPEN: %d face(s) to restore, on %s", progress.chosen, self.ran_on)
            self.announced = progress.chosen
        if progress.stage == "pasted" and progress.restored and (
                progress.restored - self.logged >= self.batch_size or
                progress.restored == progress.chosen):
            self.logged = progress.restored
            log.info("GPEN: %s, %.1f s a face", counted(progress.restored, progress.chosen),
                     (time.monotonic() - self.started) / progress.restored)
        if self.progress is not None:
            self.progress(progress)


class RestorationService:
    def __init__(self, environment):
        self.environment = environment
        self._restorer = None
        self._key = None
        self._face_models = None
        self._lock = threading.RLock()

    def face_models(self):
        """The detector and parser (FaceModels, each loaded on first use) on the host's
        device, shared with the restorer."""
        device = torch.device(self.environment.device())
        with self._lock:
            if self._face_models is None:
                self._face_models = FaceModels(self.environment.face_models_dir(),
                                               device=device)
            elif self._face_models.device != device:
                self._face_models.move_to(device)
            return self._face_models

    def restorer(self, model, precision="auto"):
        """The restorer for this model (a release or a checkpoint's file name in the models
        folder) and precision on the host's device; loaded once, and replaced when the model
        or precision changes. The old one waits on the CPU while the new one is found,
        downloaded and read, so a request that fails leaves it in place, and the device never
        holds both."""
        device = torch.device(self.environment.device())
        precision = PRECISION.check(precision)
        with self._lock:
            reference = resolve_model(model, self.environment.models_dir())
            key = (reference.path, resolve_precision(precision, device, warn=False))
            if self._key != key:
                if self._restorer is not None:
                    self._restorer.to("cpu")
                self.environment.free_memory()
                # the first thing a user waiting on a CPU sees move: loading takes seconds
                if reference.release is not None and not reference.path.is_file():
                    text = f"GPEN: downloading {reference.name} (once; progress in the console)"
                elif reference.auto:
                    text = "GPEN: auto: each release loads when a face first needs it"
                else:
                    text = f"GPEN: loading {reference.name}"
                log.info("%s", text)
                self.environment.status(text)
                restorer = load_restorer(reference, device=device, precision=precision,
                                         allow_paths=False, status=self.environment.status,
                                         face_models=self.face_models())
                self._restorer, self._key = restorer, key
                gc.collect()  # the old restorer's network
                self.environment.collect_garbage()
            elif self._restorer.device != device:
                self._restorer.to(device)
            return self._restorer

    def restore(self, image, settings, landmarks=None, progress=None):
        """Restore or raise; used where the caller reports errors itself (the HTTP route).
        `settings`: options.Settings; `progress` as for FaceRestorer.restore."""
        with self._lock:
            restorer = self.restorer(settings.model, settings.precision)
            options = settings.options.within(self.environment.faces_per_image())
            progress = ConsoleProgress(progress, options.batch_size,
                                       f"{restorer.device} ({restorer.precision})")
            try:
                return restorer.restore(image, options, landmarks, progress=progress)
            finally:
                if self.environment.unload_after_use():
                    restorer.to("cpu")
                self.environment.collect_garbage()

    def detect(self, image, settings):
        """The faces of an image, left to right, as the restorer for `settings` finds them:
        the detector alone, no GPEN network loaded for it."""
        with self._lock:
            return detect_faces(self.face_models(), image, settings.options)

    def restore_safely(self, image, settings, progress=None):
        """(image, result): restored, or, if anything fails, the image as given, None and a
        log entry."""
        started = time.monotonic()
        try:
            result = self.restore(image, settings, progress=progress)
        except Exception as error:  # the host's own work must go on whatever happens here
            log.error("GPEN: face restoration failed, image left unrestored: %s", error,
                      exc_info=not isinstance(error, (OSError, ValueError, RuntimeError)))
            return image, None
        log.info("GPEN: %s in %.1f s on %s", result.message, time.monotonic() - started,
                 result.ran_on)
        return result.image, result

    def unload(self):
        with self._lock:
            self._restorer, self._key, self._face_models = None, None, None
            gc.collect()
            self.environment.collect_garbage()
