"""Loaded by every Python process of a test's Ray run (tests/test_ray.py puts this folder on
PYTHONPATH and names a file in GPEN_TEST_STALL_ON): the first attempt at that file writes its
worker's pid into GPEN_TEST_STALL_MARKER and waits there until the test kills the worker, so
that a worker dies in the middle of a file every time (a clip once its first frame is written
into its temporary file); a retry goes through as usual."""

import builtins
import os
import sys
import time

STALL_ON = os.environ.get("GPEN_TEST_STALL_ON")


def _stall():
    """Wait to be killed, on the first attempt only; False on a retry."""
    try:
        marker = os.open(os.environ["GPEN_TEST_STALL_MARKER"],
                         os.O_CREAT | os.O_EXCL | os.O_WRONLY)
    except FileExistsError:
        return False
    os.write(marker, str(os.getpid()).encode())
    os.close(marker)
    time.sleep(600)
    return True


def _stall_first_attempt(worker_class):
    restore = worker_class.outputs

    def outputs(self, task):
        if os.path.basename(str(task.source)) != STALL_ON:
            return restore(self, task)
        if task.kind == "image":
            _stall()
            return restore(self, task)
        from gpen_ext import video
        write = video.VideoSink.write

        def write_then_stall(sink, pixels, frame):
            write(sink, pixels, frame)
            _stall()
        video.VideoSink.write = write_then_stall
        try:
            return restore(self, task)
        finally:
            video.VideoSink.write = write
    worker_class.outputs = outputs


if STALL_ON:
    _import = builtins.__import__

    def _import_and_patch(name, *args, **kwargs):
        module = _import(name, *args, **kwargs)
        worker_class = getattr(sys.modules.get("gpen_ext.ray_jobs"), "RayWorker", None)
        if worker_class is not None and not getattr(worker_class, "stalls", False):
            worker_class.stalls = True  # once the module is whole
            _stall_first_attempt(worker_class)
        return module

    builtins.__import__ = _import_and_patch
