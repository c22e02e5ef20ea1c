"""Convolving large maps a band of rows at a time, for the fast paths on the CPU.

A band's temporaries stay warm in cache and under glibc's 32 MB mmap threshold, so they are
reused instead of faulted in afresh; and a layer whose output has its input's shape can write
each band over the input rows it no longer needs (see `one_ahead`).
"""

import contextvars

import torch
from torch.nn import functional as F

BAND_BYTES = 8 << 20  # a band's output (or input, if wider), for every batch it holds
# Set where a face does not fit a device's memory whole (device_memory.py)
BANDS_ON_EVERY_DEVICE = contextvars.ContextVar("bands_on_every_device", default=False)


def band_rows(x, channels=None, multiple=1):
    """Rows per band for a map like `x` (NCHW) producing `channels` per pixel, a multiple of
    `multiple`. On a GPU, whole maps serve better (one band taller than any output of x),
    unless memory is short (BANDS_ON_EVERY_DEVICE)."""
    n, in_channels, height, width = x.shape
    if x.device.type != "cpu" and not BANDS_ON_EVERY_DEVICE.get():
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


def one_ahead(items):
    """Yield each item only after the next one has been computed, so that a caller may write
    an item's result over input rows that only the items before the next one read."""
    previous = None
    for item in items:
        if previous is not None:
            yield previous
        previous = item
    if previous is not None:
        yield previous
