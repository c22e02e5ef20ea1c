"""GPEN blind face restoration: the network, its checkpoints, the face pipeline and the CLI.

Layers, each using only those before it: `arch` (the GPEN network, its state-dict loader and
fast path; shared band and Winograd helpers) -> `checkpoints`, `registry`, `download` ->
`images`, `alignment`, `face_models`, `inference`, `options`, `compositing`, `pipeline` ->
`restorers` (a ready pipeline from a model name) -> `files`, `allocator`, `cli` and `hosts`
(a service, HTTP routes, the WebUI)."""

from .checkpoints import CheckpointError, load_model
from .options import RestoreOptions
from .pipeline import FaceRestorer, RestoreResult
from .restorers import load_restorer

__all__ = ["CheckpointError", "FaceRestorer", "RestoreOptions", "RestoreResult", "load_model",
           "load_restorer"]
__version__ = "0.3.0"
