"""GPEN blind face restoration: the network, its checkpoints, the face pipeline and the CLI.

Layers, each using only those before it: `arch.gpen` (network, state-dict loader, fast path)
-> `checkpoints`, `registry`, `download` -> `images`, `alignment`, `face_models`, `inference`,
`pipeline` -> `files`, `allocator`, `cli` and `hosts` (a service, HTTP routes, the WebUI)."""

from .checkpoints import CheckpointError, load_model
from .pipeline import FaceRestorer, RestoreOptions, RestoreResult

__all__ = ["CheckpointError", "FaceRestorer", "RestoreOptions", "RestoreResult", "load_model"]
__version__ = "0.1.0"
