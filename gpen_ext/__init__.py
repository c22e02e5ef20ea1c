"""GPEN blind face restoration: the network, its checkpoints, the face pipeline and the CLI.

Layers, each using only those before it: `arch.gpen` (network and state-dict loader) ->
`checkpoints`, `registry`, `download` -> `images`, `alignment`, `detection`, `pipeline` ->
`cli` and `hosts` (the WebUI adapter)."""

from .checkpoints import CheckpointError, load_model
from .pipeline import FaceRestorer, RestoreOptions, RestoreResult

__all__ = ["CheckpointError", "FaceRestorer", "RestoreOptions", "RestoreResult", "load_model"]
__version__ = "0.1.0"
