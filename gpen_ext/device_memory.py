"""How many faces fit on a GPU at once, and what happens when they do not.

A batch is sized from the device's free memory and a per-face estimate; a call that still runs
out of memory is retried with half the faces, down to one; a face that does not fit alone runs
with its large maps in bands on the device, and, last, on the CPU, with a warning. The caller's
image is never lost and the output is the function's own whichever way it was computed.
"""

import copy
import logging
import threading
from contextlib import contextmanager

import torch

from .arch import bands

log = logging.getLogger(__name__)

# Activation memory of one face in fp32 on the device path (whole maps, direct convolutions):
# the growth of peak memory from a batch of 1 to 4, which is linear, and the parser's peak for
# its one face at a time. Measured by `python benchmarks/device_check.py --memory-table` on the
# CPU with the device path forced (bands.map_policy("device")) and every freed block returned
# at once, so that resident memory follows the tensors alive; the same in two runs
# (2026-12-01). No GPU was at hand: on one, that command measures the device allocator's peak.
NETWORK_MB_PER_FACE = {256: 22, 512: 175, 1024: 353, 2048: 728}
PARSER_MB = 642
PRECISION_SHARE = {"fp32": 1.0, "fp16": 0.5, "bf16": 0.5}  # activations in 16 bits
REDUCED_DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16}  # what autocast runs them in
HEADROOM = 1.5     # the device allocator's rounding and caches, convolution workspaces
RESERVED_MB = 512  # left to the host, and to the parser between network calls


def network_mb_per_face(size, precision):
    """The estimate for a network of `size` (sizes between releases: the next larger one)."""
    released = min((s for s in NETWORK_MB_PER_FACE if s >= size), default=max(NETWORK_MB_PER_FACE))
    return NETWORK_MB_PER_FACE[released] * PRECISION_SHARE.get(precision, 1.0) * HEADROOM


def free_bytes(device):
    """Memory this process can still use on `device`; None where that cannot be told."""
    device = torch.device(device)
    if device.type == "cuda":
        free, _ = torch.cuda.mem_get_info(device)
        return free + torch.cuda.memory_reserved(device) - torch.cuda.memory_allocated(device)
    if device.type == "mps" and hasattr(torch.mps, "recommended_max_memory"):
        return torch.mps.recommended_max_memory() - torch.mps.driver_allocated_memory()
    return None


def faces_that_fit(device, size, precision, most):
    """At most `most` faces whose activations fit in the free memory of `device`, at least 1."""
    available = free_bytes(device)
    if available is None:
        return most
    usable = available - (RESERVED_MB + PARSER_MB) * 2 ** 20
    return max(1, min(most, int(usable // (network_mb_per_face(size, precision) * 2 ** 20))))


def is_out_of_memory(error):
    kind = getattr(torch, "OutOfMemoryError", torch.cuda.OutOfMemoryError)
    return isinstance(error, kind) or (isinstance(error, RuntimeError)
                                       and "out of memory" in str(error).lower())


def release_cached(device):
    kind = torch.device(device).type
    if kind == "cuda" and torch.cuda.is_available():
        torch.cuda.empty_cache()
    elif kind == "mps" and torch.backends.mps.is_available():
        torch.mps.empty_cache()


def run_fitting(run, items, step, device, what):
    """`run(chunk, where)` over consecutive chunks of `items` (`step` at a time), concatenated;
    `where` is "device", "bands" (large maps in bands on the device) or "cpu". Out of memory
    halves the step, then, for a single item, tries bands, then the CPU."""
    outputs, start, fallback = [], 0, "device"
    while start < len(items):
        chunk = items[start:start + step]
        try:
            outputs.append(run(chunk, fallback))
        except Exception as error:  # noqa: BLE001 (only out-of-memory is handled here)
            if not is_out_of_memory(error):
                raise
            release_cached(device)
            if step > 1:
                step //= 2
                log.warning("GPEN: %s ran out of memory on %s; trying %d at a time", what,
                            device, step)
            elif fallback == "device":
                fallback = "bands"
                log.warning("GPEN: %s ran out of memory on %s for a single face; running its "
                            "large maps in bands", what, device)
            elif fallback == "bands":
                fallback = "cpu"
                log.warning("GPEN: %s does not fit on %s even in bands; running it on the CPU "
                            "(slow)", what, device)
            else:
                raise
            continue
        start += len(chunk)
    return torch.cat(outputs)


@contextmanager
def placed(module, device, where):
    """The device a call computes on, for `where` (see run_fitting): `module` moved to the CPU
    for the call, or left on `device` with its large maps in bands, or just left there."""
    if where == "cpu":
        module.to("cpu")
        try:
            yield torch.device("cpu")
        finally:
            module.to(device)
    elif where == "bands":
        with bands.map_policy("bands"):
            yield torch.device(device)
    else:
        yield torch.device(device)


class Precisions:
    """A module run in a precision: bf16 by a copy of it in bf16, made on first use and kept
    (faster than autocast, which casts every weight at every call, and half its memory
    traffic); fp16 under autocast (with its fp32 sums); fp32 as it is. `kept_fp32`: names of
    parts (as named_modules gives them) that stay fp32 in the copy."""

    def __init__(self, module, kept_fp32=()):
        self.module, self.kept_fp32 = module, tuple(kept_fp32)
        self.copy = None
        self.lock = threading.Lock()

    def __call__(self, batch, precision):
        if precision == "bf16":
            return self.bf16_copy()(batch.to(torch.bfloat16))
        with torch.autocast(batch.device.type, dtype=REDUCED_DTYPES.get(precision),
                            enabled=precision in REDUCED_DTYPES):
            return self.module(batch)

    def bf16_copy(self):
        with self.lock:  # faces side by side ask at once (arch/cpu.py); one copy, made whole
            if self.copy is None:
                copied = copy.deepcopy(self.module)
                for name, part in copied.named_modules():
                    if self.kept_fp32 and name.startswith(self.kept_fp32):
                        continue
                    for key, tensor in list(part._buffers.items()) + \
                            list(part._parameters.items()):
                        if tensor is not None and tensor.is_floating_point():
                            setattr(part, key, type(tensor)(tensor.to(torch.bfloat16))
                                    if isinstance(tensor, torch.nn.Parameter) else
                                    tensor.to(torch.bfloat16))
                self.copy = copied
            return self.copy

    def forget(self):
        """Drop the copy (the module moved: it is made again where it is)."""
        self.copy = None
