"""GPEN blind face restoration: the network, its checkpoints, the face pipeline and the CLI.

Layers, each using only those before it: `arch` (the GPEN network, its state-dict loader and
fast path; shared band, thread, CPU-plan, interrupt and Winograd helpers) -> `images`,
`alignment`, `faces`, `compositing`, `encoders`, `registry`, `options` (settings and faces,
without torch) -> `checkpoints`, `download` -> `landmarks`, `results`, `torchvision_ops`,
`device_memory`, `face_models`, `inference`, `releases`, `progress`, `motion`, `tracking`,
`scheduling`, `aligned`, `pipeline` -> `restorers` (a ready pipeline from a model name) ->
`files`, `clips`, `video`, `sheets`, `allocator` -> `jobs`, `tasks`, `ray_jobs`, `engine`
(files restored as a job), `uploads` (files a page takes in) -> `hosts` (a service, HTTP
routes, the WebUI, ComfyUI, the page) -> `cli` (which serves the page: `python -m gpen_ext
app`).
From Python: `load_restorer` for arrays, `restore_files` for files, folders and clips as the
command line restores them."""

__version__ = "0.3.0"

import importlib

# The public names, each imported where it lives when first used, so that the settings, the
# tracker and `python -m gpen_ext --help` load without torch.
_HOMES = {"CheckpointError": "checkpoints", "load_model": "checkpoints",
          "restore_files": "engine", "UsageError": "jobs", "RestoreOptions": "options",
          "FaceRestorer": "pipeline", "RestoreResult": "pipeline", "load_restorer": "restorers"}
__all__ = sorted(_HOMES)


def __getattr__(name):
    if name not in _HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
