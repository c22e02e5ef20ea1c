"""How many CPU threads torch's operations use, set for a block and given back afterwards.

torch keeps its thread count per OS thread (OpenMP's own setting) plus one default that
threads starting later take; both are set back to the caller's count when the block ends,
errors included, so that a host's own setting is left as it was.
"""

import contextlib

import torch


@contextlib.contextmanager
def torch_threads(count):
    """Run the block's operations on `count` threads."""
    previous = torch.get_num_threads()
    if count == previous:
        yield
        return
    torch.set_num_threads(count)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def one_thread():
    """For small work whose result would otherwise depend on the thread count: on small
    maps, and in products with few outputs, torch's CPU kernels split the sum of each
    output's products among threads, which changes its rounding. On one thread such work
    gives the same bits however many threads the rest runs on, at little cost."""
    return torch_threads(1)
