"""Convolving large maps a band of rows at a time, for the fast paths on the CPU.

A band's temporaries stay warm in cache and under glibc's 32 MB mmap threshold, so they are
reused instead of faulted in afresh; bands are independent of each other, so that threads can
share them (threads.run_all); and a layer whose output has its input's shape writes each band
over its own input rows, the rows just outside each band copied first (`EdgeRows`).

Which path a map takes is decided here for both fast paths (`cpu_path`, `in_bands`), by the
device it is on and the policy in force (`map_policy`).
"""

import contextlib
import contextvars

import torch
from torch.nn import functional as F

BAND_BYTES = 8 << 20  # a band's output (or input, if wider), for every batch it holds
# "auto": the CPU path (bands, Winograd) on the CPU, whole maps and direct convolutions on a
# device, which they serve better; "bands": bands on every device (a face that does not fit a
# device's memory whole, device_memory.py); "device": the device path everywhere, the CPU
# included (to measure on the CPU what a face needs on a GPU).
MAP_POLICIES = ("auto", "bands", "device")
_MAP_POLICY = contextvars.ContextVar("map_policy", default="auto")


@contextlib.contextmanager
def map_policy(policy):
    """Run the block's convolutions under `policy` (one of MAP_POLICIES)."""
    if policy not in MAP_POLICIES:
        raise ValueError(f"unknown map policy '{policy}': choose one of {MAP_POLICIES}")
    token = _MAP_POLICY.set(policy)
    try:
        yield
    finally:
        _MAP_POLICY.reset(token)


def cpu_path(x):
    """Whether `x` takes the CPU's path (Winograd where it pays, bands)."""
    return x.device.type == "cpu" and _MAP_POLICY.get() != "device"


def in_bands(x):
    """Whether large maps like `x` are convolved a band of rows at a time."""
    return cpu_path(x) or _MAP_POLICY.get() == "bands"


def band_rows(x, channels=None, multiple=1):
    """Rows per band for a map like `x` (NCHW) producing `channels` per pixel, a multiple of
    `multiple`; one band taller than any output of x where maps go whole (`in_bands`)."""
    n, in_channels, height, width = x.shape
    if not in_bands(x):
        return max(multiple, 2 * height)
    row_bytes = n * max(channels or in_channels, in_channels) * width * x.element_size()
    rows = BAND_BYTES // row_bytes
    return max(multiple, rows // multiple * multiple)


def bands(height, rows):
    """(start, stop) of consecutive bands of `rows` rows covering `height`."""
    return ((start, min(start + rows, height)) for start in range(0, height, rows))


def rows_of(x, start, stop, padding="zeros"):
    """Rows start..stop - 1 of an NCHW map; rows beyond the map are zeros, the map mirrored
    about its edge row ("reflect") or the edge row repeated ("replicate")."""
    height = x.shape[2]
    if start >= 0 and stop <= height:
        return x[:, :, start:stop]
    if padding == "zeros":
        band = x[:, :, max(start, 0):min(stop, height)]
        return F.pad(band, (0, 0, max(-start, 0), max(stop - height, 0)))
    index = torch.arange(start, stop, device=x.device)
    if padding == "reflect":
        index = index.abs()
        index = torch.where(index >= height, 2 * (height - 1) - index, index)
    else:
        index = index.clamp(0, height - 1)
    return x.index_select(2, index)


class EdgeRows:
    """For a layer that writes its output over its own input, band by band in any order: the
    input rows just outside each band (one above, one below), copied before any band is
    written, so that every band reads its neighbours' rows as they were."""

    def __init__(self, x, spans):
        """`x`: the NCHW map; `spans`: the (start, stop) rows each band reads around and
        writes."""
        height = x.shape[2]
        self.x = x
        self.saved = {row: x[:, :, row:row + 1].clone() for start, stop in spans
                      for row in (start - 1, stop) if 0 <= row < height}

    def rows_of(self, start, stop, own):
        """Rows start..stop - 1 as they were (zeros beyond the map), for the band that writes
        the rows `own` (start, stop)."""
        above = [self._row(row) for row in range(start, own[0])]
        below = [self._row(row) for row in range(own[1], stop)]
        inside = self.x[:, :, max(start, own[0]):min(stop, own[1])]
        return torch.cat(above + [inside] + below, dim=2) if above or below else inside

    def _row(self, row):
        if row in self.saved:
            return self.saved[row]
        return torch.zeros_like(self.x[:, :, :1])  # beyond the map
