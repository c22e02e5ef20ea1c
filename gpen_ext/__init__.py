"""GPEN blind face restoration: the network, its checkpoints, the face pipeline and the CLI.

Layers, each using only those before it: `arch` (the GPEN network, its state-dict loader and
fast path; shared band, thread and Winograd helpers) -> `checkpoints`, `registry`,
`download`, `encoders`, `options` -> `images`, `alignment`, `landmarks`, `face_models`,
`cpu_threads`, `inference`, `releases`, `compositing`, `tracking`, `scheduling`, `pipeline` ->
`restorers` (a ready pipeline from a model name) -> `files`, `clips`, `video`, `sheets` ->
`jobs`, `tasks`, `ray_jobs`, `engine` (files restored as a job) -> `cli` and `hosts` (a
service, HTTP routes, the WebUI, ComfyUI). From Python: `load_restorer` for arrays,
`restore_files` for files, folders and clips as the command line restores them."""

__version__ = "0.3.0"

from .checkpoints import CheckpointError, load_model  # noqa: E402
from .engine import restore_files  # noqa: E402
from .jobs import UsageError  # noqa: E402
from .options import RestoreOptions  # noqa: E402
from .pipeline import FaceRestorer, RestoreResult  # noqa: E402
from .restorers import load_restorer  # noqa: E402

__all__ = ["CheckpointError", "FaceRestorer", "RestoreOptions", "RestoreResult", "UsageError",
           "load_model", "load_restorer", "restore_files"]
