"""How many CPU threads torch's operations use, set for a block and given back afterwards.

torch keeps its thread count per OS thread (OpenMP's own setting) plus one default that
threads starting later take; both are set back to the caller's count when the block ends,
errors included, so that a host's own setting is left as it was.
"""

import contextlib
import contextvars
import functools
import itertools
import threading
from concurrent.futures import ThreadPoolExecutor, wait

import torch

from .interrupts import between_steps


_HELD = {"blocks": 0, "default": None}  # blocks under way in any thread; the count before
_HELD_LOCK = threading.Lock()
_BLOCKS_HERE = threading.local()  # this thread's blocks under way


@contextlib.contextmanager
def torch_threads(count):
    """Run the block's operations on `count` threads. torch's setter also sets the count that
    threads started later take, so blocks in several threads at once could leave it, or a
    thread starting meanwhile, at one of theirs: the count before the first of them is what
    each thread's outermost block gives back, and what the last block to end puts back."""
    with _HELD_LOCK:
        previous = torch.get_num_threads()
        here = getattr(_BLOCKS_HERE, "count", 0)
        # nothing to set, nor to put back, where the count already is the one asked for
        unchanged = count == previous and (here or _HELD["blocks"] == 0)
        if not unchanged:
            if _HELD["blocks"] == 0:
                _HELD["default"] = previous
            elif not here:
                previous = _HELD["default"]  # what this thread found may be another block's
            _HELD["blocks"] += 1
            torch.set_num_threads(count)
    if unchanged:
        yield
        return
    _BLOCKS_HERE.count = getattr(_BLOCKS_HERE, "count", 0) + 1
    try:
        yield
    finally:
        _BLOCKS_HERE.count -= 1
        with _HELD_LOCK:
            _HELD["blocks"] -= 1
            torch.set_num_threads(_HELD["default"] if _HELD["blocks"] == 0 else previous)


def one_thread():
    """For small work whose result would otherwise depend on the thread count: on small
    maps, and in products with few outputs, torch's CPU kernels split the sum of each
    output's products among threads, which changes its rounding. On one thread such work
    gives the same bits however many threads the rest runs on, at little cost."""
    return torch_threads(1)


# ------------------------------------------------------------------ maps shared among threads

MOST_SHARERS = 4  # threads sharing work: beyond, each runs torch's operations on several
_SHARERS = contextvars.ContextVar("band_sharers", default=(1, None))
@functools.cache
def _helpers():
    """The helper threads, started when work is first shared (not when imported)."""
    return ThreadPoolExecutor(MOST_SHARERS - 1, thread_name_prefix="gpen-helper")


@contextlib.contextmanager
def bands_shared_by(workers, threads=1):
    """Let `run_all` in the block share its work among `workers` threads (see `share`), each
    running torch's operations on `threads` threads."""
    token = _SHARERS.set((workers, threads))
    try:
        yield
    finally:
        _SHARERS.reset(token)


# Products with fewer inputs or outputs per pixel than this (a first layer reading RGB, a
# to-RGB layer, the parser's 19 classes) go through gemm-based kernels whose sums torch splits
# among its threads on some CPUs (seen on AVX2: the first 1x1 conv and the to-RGB product at
# 1 against 2 threads); their bands each run on one torch thread (`run_all(in_order=True)`),
# as do the Winograd layers' batched products, which MKL may split likewise.
THIN_CHANNELS = 32


def run_all(tasks, in_order=False):
    """Call each of `tasks` (independent of each other: a map's bands), shared among threads
    as `bands_shared_by` allows, else one after the other on the calling thread.
    `in_order`: each task sums on one torch thread, the tasks shared among as many threads
    as they would otherwise have used, so that their bits do not depend on the thread count
    on any CPU (for products a kernel may split, see THIN_CHANNELS)."""
    workers, threads = _SHARERS.get()
    if not in_order:
        share(tasks, workers, threads)
        return
    workers = max(workers * (threads or 1), torch.get_num_threads())
    with one_thread():  # the caller's share too
        share(tasks, workers, 1)


def share(tasks, workers, threads):
    """Call each of `tasks` on the calling thread and up to `workers - 1` helpers (at most
    MOST_SHARERS threads in all), each running torch's operations on `threads` threads and
    taking the next task as it finishes one, so that a thread slowed by other programs holds
    up no one. The first error is raised once every thread has stopped (the others stop after
    the task at hand). A stop (interrupts.checked_by) is checked before each task."""
    workers = min(workers, len(tasks), MOST_SHARERS)
    if workers <= 1:
        for task in tasks:
            between_steps()
            task()
        return
    order = itertools.count()
    stop = threading.Event()

    def drain():
        with torch.inference_mode(), torch_threads(threads):
            index = next(order)
            while index < len(tasks) and not stop.is_set():
                try:
                    between_steps()
                    tasks[index]()
                except BaseException:
                    stop.set()
                    raise
                index = next(order)

    helpers = [_helpers().submit(contextvars.copy_context().run, drain)
               for _ in range(workers - 1)]
    try:
        drain()
        for helper in helpers:
            helper.result()
    finally:
        stop.set()  # also when the caller is interrupted
        wait(helpers)
