"""A long forward pass stopped part way: between its layers and between the bands of a map.

The caller sets a check for a block (`checked_by`); a network made `interruptible` calls it
before each of its modules runs, and `threads.share` before each band, on whichever thread
does the work. The check raises to stop; what was under way is then abandoned whole.
"""

import contextlib
import contextvars

_CHECK = contextvars.ContextVar("stop_check", default=None)


@contextlib.contextmanager
def checked_by(check):
    """Call `check()` between the steps of the networks run in the block."""
    token = _CHECK.set(check)
    try:
        yield
    finally:
        _CHECK.reset(token)


def between_steps():
    check = _CHECK.get()
    if check is not None:
        check()


def _before_module(module, args):
    between_steps()


def interruptible(network):
    """`network`, with `between_steps` called before each of its modules runs (once made
    so, it stays so)."""
    if not getattr(network, "interruptible", False):
        for module in network.modules():
            module.register_forward_pre_hook(_before_module)
        network.interruptible = True
    return network
