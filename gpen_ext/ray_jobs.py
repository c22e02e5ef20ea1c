"""Whole archives on a Ray cluster: the command line's jobs spread over a pool of workers, each
holding one loaded restorer, resumable, nothing lost.

Ray Data schedules: the files go through `map_batches` one at a time into a pool of actors
(on a GPU each where there are GPUs, else on CPU cores), and come back to this process as
they finish. Each worker restores with the same code as a run here (tasks.py) and sends the
files back as bytes; this process writes each one into place atomically, once, and then its
line in the manifest (JSON lines: input, output, faces, under auto the faces by release,
seconds, error). A worker that dies has its file retried elsewhere by Ray; whatever attempt
finishes first is the one written, so no file is lost or written twice. A run started again
skips what the manifest and the output folder show as done. Clips are one task each; their
worker writes them itself (their target must be on a file system the workers share).

Ray is imported here only, and only when `--ray` is given.
"""

import json
import logging
import os
import pickle
import socket
import sys
import time
from collections import Counter
from pathlib import Path

from .files import decode_image, leftover_temporaries, write_file
from .jobs import (EXIT_OK, EXIT_SOME_FAILED, IMAGE, INPUT_SUFFIXES, Task, UsageError, is_remote,
                   faces_given)
from .restorers import fetch_models
from .results import face_tally
from .tasks import (Progress, Report, failure, image_outputs, open_restorer, set_up,
                    restore_clip_file)

log = logging.getLogger(__name__)

INSTALL = "pip install -r requirements-ray.txt"
MANIFEST = "gpen-manifest.jsonl"


class RayUnavailable(UsageError):
    """Ray is not installed, or the cluster cannot be reached: a usage error (exit 2)."""


def import_ray():
    try:
        import ray
        import ray.data  # noqa: F401 (Ray Data is the part used)
    except ImportError as error:
        raise RayUnavailable(f"--ray needs Ray with Ray Data: {INSTALL} ({error})") from None
    return ray


def expand_remote(pattern):
    """(URI, path relative to the output folder) for a remote file or folder of images."""
    from pyarrow import fs as arrow_fs
    filesystem, path = arrow_fs.FileSystem.from_uri(pattern)
    info = filesystem.get_file_info(path)
    scheme = pattern.split("://", 1)[0]
    if info.type == arrow_fs.FileType.NotFound:
        raise FileNotFoundError(f"no such file or folder: {pattern}")
    if info.type == arrow_fs.FileType.File:
        return [(pattern, Path(Path(path).name))]
    found = filesystem.get_file_info(arrow_fs.FileSelector(path, recursive=True))
    return [(f"{scheme}://{item.path}", Path(item.path).relative_to(path)) for item in
            sorted(found, key=lambda item: item.path)
            if item.type == arrow_fs.FileType.File and Path(item.path).suffix.lower() in
            INPUT_SUFFIXES]


def read_source(source):
    """The bytes of a local file or of a URI pyarrow reads."""
    if not is_remote(source):
        return Path(source).read_bytes()
    from pyarrow import fs as arrow_fs
    filesystem, path = arrow_fs.FileSystem.from_uri(str(source))
    with filesystem.open_input_stream(path) as stream:
        return stream.read()


class Manifest:
    """One JSON line a file, appended and flushed as files finish."""

    def __init__(self, path):
        self.path = Path(path)

    def done(self):
        """The inputs a run has restored whose outputs are still there."""
        finished = {}
        if not self.path.is_file():
            return finished
        for line in self.path.read_text().splitlines():
            try:
                row = json.loads(line)
            except ValueError:
                continue  # a line cut short when a run was stopped
            if not row.get("error") and Path(row.get("output", "")).exists():
                finished[row["input"]] = row
        return finished

    def append(self, row):
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with open(self.path, "a") as stream:
            stream.write(json.dumps(row) + "\n")
            stream.flush()
            os.fsync(stream.fileno())


def manifest_of(job):
    path = Path(job.manifest or Path(job.output) / MANIFEST)
    if path.is_dir():
        raise UsageError(f"--manifest {path} is a folder: name a file, e.g. {path / MANIFEST}")
    return Manifest(path)


def releases_of(faces):
    """A manifest row's faces by release (a Counter from results.face_tally), under auto."""
    releases = {str(size): count for size, count in sorted(faces.items()) if size}
    return {"releases": releases} if releases else {}


def finished_inputs(job):
    """The inputs an earlier run restored into what is still there: a run resumes them."""
    return set(manifest_of(job).done())


class RayWorker:
    """A Ray Data worker: one restorer, loaded once, for every file given to it."""

    def __init__(self, job, landmarks, threads):
        import torch
        from .allocator import keep_freed_memory
        from .arch.threads import torch_threads
        keep_freed_memory()
        if threads:  # the CPUs Ray gave this worker: the ceiling of its threads
            torch.set_num_threads(threads)
        self.job, self.landmarks = job, landmarks
        # Ray calls this worker on another thread than this one; torch's threads serve the
        # thread that starts their work, and two such sets on two cores made every operation
        # wait for sleeping threads (10% slower): loading here on one thread starts none
        with torch_threads(1):
            self.restorer = open_restorer(job, landmarks, download=False)

    def __call__(self, batch):
        rows = []
        for index, source, target, kind in zip(batch["index"], batch["source"],
                                               batch["target"], batch["kind"]):
            started, written, faces, error = time.monotonic(), [], Counter(), None
            task = Task(str(source) if is_remote(str(source)) else Path(str(source)),
                        Path(str(target)), str(kind))
            try:
                written, faces = self.outputs(task)
            except Exception as problem:  # recorded in the manifest; the job goes on
                error = failure(task.source, problem)
            # one opaque value a row, so that clips (no files) and images share one schema;
            # pickled between this job's own processes, as Ray moves every object anyway
            rows.append(pickle.dumps({"index": int(index), "faces": faces, "error": error,
                                      "seconds": round(time.monotonic() - started, 3),
                                      "worker": os.getpid(), "written": written}))
        return {"result": rows}

    def outputs(self, task):
        """One task restored: (files as (path, bytes) for the driver to write, faces); a clip
        is streamed into its target by this worker."""
        if task.kind != IMAGE:
            if is_remote(task.source):
                raise ValueError("clips are read from local or shared paths, not URIs")
            return [], restore_clip_file(self.restorer, task, self.job, self.landmarks,
                                         Progress(0))
        picture = decode_image(read_source(task.source), name=str(task.source),
                               max_megapixels=self.job.max_megapixels)
        written, result = image_outputs(self.restorer, picture, task, self.job, self.landmarks)
        return written, face_tally(result)


def run_on_ray(tasks, job, landmarks):
    """Restore the planned tasks on Ray, once what every worker needs is in the models
    folder; the exit code."""
    ray = import_ray()
    check_reachable(job.ray)  # before any download
    with set_up():
        fetch_models(job.model, job.models_dir, job.options, detecting=landmarks is None,
                     download=not job.no_download,
                     face_models=landmarks is None or faces_given(landmarks))
    manifest = manifest_of(job)
    finished = manifest.done()
    todo = [task for task in tasks if str(task.source) not in finished]
    if len(todo) < len(tasks):
        print(f"{len(tasks) - len(todo)} file(s) done in an earlier run (see {manifest.path});"
              f" {len(todo)} to go", file=sys.stderr)
    if not todo:
        return EXIT_OK
    connect(ray, job.ray)
    report, progress = Report(" on Ray"), Progress(len(todo))
    for outcome in outcomes(ray, todo, job, landmarks):
        task, error = todo[outcome["index"]], outcome["error"]
        try:
            for path, data in outcome["written"]:
                write_file(path, data)
        except OSError as problem:
            error = str(problem)
        manifest.append({"input": str(task.source), "output": str(task.target),
                         "faces": outcome["faces"].total(), **releases_of(outcome["faces"]),
                         "seconds": outcome["seconds"],
                         "error": error, "worker": outcome["worker"]})
        if error:
            report.fail(task.source, error)
        else:
            report.done(outcome["faces"])
        progress.file_done(failures=len(report.failed))
    progress.close()
    for task in todo:  # what an attempt killed part way through a clip left behind
        if task.kind != IMAGE:
            for leftover in leftover_temporaries(task.target):
                leftover.unlink(missing_ok=True)
    print(report.summary(), file=sys.stderr)
    return EXIT_SOME_FAILED if report.failed else EXIT_OK


def outcomes(ray, todo, job, landmarks):
    """Each task's outcome as the workers send it, once: a file retried after a worker died
    counts by its first outcome."""
    # on CPUs a worker a thread unless told otherwise: workers side by side, not contending
    threads = job.ray_threads_per_worker or (None if job.ray_gpus_per_worker else 1)
    workers = job.ray_workers or default_workers(ray, job, threads)
    items = [{"index": index, "source": str(task.source), "target": str(task.target),
              "kind": task.kind} for index, task in enumerate(todo)]
    # one malloc arena: Ray runs the worker's calls on a thread of its own, whose own arena
    # would map every large tensor afresh (allocator.py)
    resources = {"num_cpus": threads or 1,
                 "runtime_env": {"env_vars": {"MALLOC_ARENA_MAX": "1"}}}
    if job.ray_gpus_per_worker:
        resources["num_gpus"] = job.ray_gpus_per_worker
    restored = ray.data.from_items(items, override_num_blocks=len(items)).map_batches(
        RayWorker, fn_constructor_kwargs={"job": job, "landmarks": landmarks,
                                          "threads": threads},
        batch_size=1, compute=ray.data.ActorPoolStrategy(size=workers), **resources)
    print(f"restoring {len(todo)} file(s) on Ray with {workers} worker(s)", file=sys.stderr)
    committed = set()
    for row in restored.iter_rows():
        outcome = pickle.loads(row["result"])
        if outcome["index"] not in committed:
            committed.add(outcome["index"])
            yield outcome


REACH_SECONDS = 10  # a cluster's head answers at once; Ray itself would retry for ever


def check_reachable(address):
    """Refuse a cluster address ("host:port", "ray://host:port") where nothing answers, before
    Ray is started: given one, Ray rewrites the host to this machine's own and retries for
    ever, saying nothing a user would see."""
    if address in ("auto", "local"):
        return
    host, _, port = address.removeprefix("ray://").rpartition(":")
    if not host or not port.isdigit():
        raise RayUnavailable(f"--ray {address}: give a cluster as HOST:PORT (or 'auto', or "
                             "no address for a Ray of its own on this machine)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=REACH_SECONDS).close()
    except OSError as error:
        reason = error.strerror or type(error).__name__
        raise RayUnavailable(f"cannot reach Ray at {address}: nothing answers there "
                             f"({reason}); is the address right and the cluster up?") from None


def connect(ray, address):
    """This process's Ray: a cluster at `address` ("auto": the one this machine belongs to),
    or a Ray of its own on this machine."""
    if ray.is_initialized():
        return
    logging.getLogger("ray").setLevel(logging.WARNING)  # its start-up talk; errors still show
    try:
        if address == "local":
            ray.init(include_dashboard=False, log_to_driver=False, configure_logging=False)
        else:
            ray.init(address=address, log_to_driver=False, configure_logging=False)
    except (ConnectionError, RuntimeError, ValueError) as error:
        raise RayUnavailable(f"cannot reach Ray at {address}: {error}") from None
    ray.data.DataContext.get_current().enable_progress_bars = False


def default_workers(ray, job, threads):
    """One worker a GPU's share where GPUs are asked for, else one a thread budget."""
    resources = ray.cluster_resources()
    if job.ray_gpus_per_worker:
        return max(1, int(resources.get("GPU", 0) / job.ray_gpus_per_worker))
    return max(1, int(resources.get("CPU", 1) // (threads or 1)))
