"""3x3 convolution by Winograd's minimal filtering F(4x4, 3x3), for the fast path on the CPU.

Directly, a 4x4 output tile costs 144 multiply-adds per channel pair. Carried into the 36-point
transform domain of Lavin and Gray ("Fast Algorithms for Convolutional Neural Networks", 2016)
it costs 36: the convolution becomes 36 independent (tiles x in) @ (in x out) matrix products.
The transforms (into the transform domain and back) are each one matrix product over a band's
tiles and channels, whose passes over memory limit it; the saving is real where channels are
enough for the products to dominate. Rounding error is a few times that of direct
convolution (about 1e-5 relative in fp32), which is why this runs in fp32 only.

Tiles are done a band of rows at a time, so the transformed band stays small and warm in cache,
and results go straight into the caller's (possibly strided) output.
"""

import functools

import torch
from torch.nn import functional as F

from .bands import EdgeRows, cpu_path, rows_of
from .threads import one_thread, run_all

TILE = 4  # output tile side; each reads a (TILE + 2)-square input tile

# G of F(4, 3), interpolation points 0, 1, -1, 2, -2 and infinity.
_KERNEL_TRANSFORM = torch.tensor([
    [1 / 4, 0, 0],
    [-1 / 6, -1 / 6, -1 / 6],
    [-1 / 6, 1 / 6, -1 / 6],
    [1 / 24, 1 / 12, 1 / 6],
    [1 / 24, -1 / 12, 1 / 6],
    [0, 0, 1]], dtype=torch.float64)


def transform_weight(weight):
    """(out, in, 3, 3) kernels -> (36, in, out) transform-domain matrices G w G^T."""
    out_channels, in_channels = weight.shape[:2]
    both_axes = torch.kron(_KERNEL_TRANSFORM, _KERNEL_TRANSFORM)  # (36, 9)
    kernels = weight.detach().double().permute(2, 3, 1, 0).reshape(9, -1)
    return (both_axes @ kernels).reshape(36, in_channels, out_channels).to(weight.dtype)


# B^T and A^T of F(4, 3): input tiles to the transform domain, products back to outputs.
_DATA_TRANSFORM = torch.tensor([
    [4, 0, -5, 0, 1, 0],
    [0, -4, -4, 1, 1, 0],
    [0, 4, -4, -1, 1, 0],
    [0, -2, -1, 2, 1, 0],
    [0, 2, -1, -2, 1, 0],
    [0, 4, 0, -5, 0, 1]], dtype=torch.float64)
_OUTPUT_TRANSFORM = torch.tensor([
    [1, 1, 1, 1, 1, 0],
    [0, 1, -1, 2, -2, 0],
    [0, 1, 1, 4, 4, 0],
    [0, 1, -1, 8, -8, 1]], dtype=torch.float64)
# Both axes at once, as one matrix product over every tile and channel of a band: a few
# passes over memory at the product's speed, where a tile's additions one by one took as
# long as the products themselves.
_TILE_TRANSFORMS = {"data": torch.kron(_DATA_TRANSFORM, _DATA_TRANSFORM),  # (36, 36)
                    "output": torch.kron(_OUTPUT_TRANSFORM, _OUTPUT_TRANSFORM)}  # (16, 36)


@functools.cache
def _tile_transform(name, dtype):
    return _TILE_TRANSFORMS[name].to(dtype)


def runs_here(x):
    """Whether a map like `x` may be convolved this way: on the CPU's path, in fp32 (not
    under autocast, which would round its products to 16 bits)."""
    return cpu_path(x) and x.dtype == torch.float32 and \
        not torch.is_autocast_enabled(x.device.type)


# A band's transformed tiles: about a core's L2 cache, where its passes are much faster, but
# at least MIN_BAND_TILES tiles, so that a wide layer's weights are not read for a few tiles.
TILE_BAND_BYTES = 2 << 20
MIN_BAND_TILES = 64


def conv3x3(x, weight, in_scale, out_scale, bias, out, band_tiles=None, padding="zeros",
            leaky_slope=None, residual=None, over_input=False, then=None):
    """out = conv3x3(x * in_scale, padding 1) * out_scale + bias, on NHWC views; then,
    optionally, + residual and a leaky ReLU.

    x: (N, H, W, in), H and W multiples of TILE, channels contiguous; weight from
    `transform_weight`; in_scale (N, in) and out_scale (N, out) per image, or None for ones;
    bias (out,); out: (N, H, W, out), any strides, written in place; residual: like out.
    `padding`: "zeros", or "reflect" (the map mirrored about its edges). `band_tiles`: tiles
    per band, by default as many as fit TILE_BAND_BYTES once transformed.
    Bands are independent (shared among threads where threads.run_all may); `over_input`:
    `out` is `x`'s own memory (a layer writing over its input, zero padding), and the rows
    around each band are then copied before any band is written."""
    spans = _spans(x.shape[1] // TILE, _band_rows(x, weight, band_tiles))
    finish = dict(out_scale=out_scale, bias=bias, out=out, leaky_slope=leaky_slope,
                  residual=residual, then=then)
    edges = EdgeRows(x.permute(0, 3, 1, 2), [(first * TILE, (first + rows) * TILE)
                                             for first, rows in spans]) if over_input else None
    # each band's products on one thread: MKL may split a product's sums among its threads
    run_all([functools.partial(_band, x, weight, in_scale, first, rows, padding, edges, finish)
             for first, rows in spans], in_order=True)
    return out


def conv3x3_rows(rows, weight, in_scale, out_scale, bias, out):
    """As `conv3x3` (zero padding), for a band that carries its own rows above and below:
    rows (N, H + 2, W, in), H a multiple of TILE; out (N, H, W, out). Computed on the
    calling thread and one torch thread, for a caller whose bands threads already share."""
    finish = dict(out_scale=out_scale, bias=bias, out=out, leaky_slope=None, residual=None,
                  then=None)
    with one_thread():
        for first, count in _spans((rows.shape[1] - 2) // TILE, _band_rows(rows, weight)):
            band = rows[:, first * TILE:(first + count) * TILE + 2]
            _write_band(first, count, _products(band, weight, in_scale, "zeros"), **finish)
    return out


def _band_rows(x, weight, band_tiles=None):
    """Tile rows per band of an NHWC map like `x` convolved with a transformed `weight`."""
    n, _, width, channels = x.shape
    band_tiles = band_tiles or max(MIN_BAND_TILES, TILE_BAND_BYTES // (
        36 * max(channels, weight.shape[2]) * x.element_size()))
    return max(1, band_tiles // (n * (width // TILE)))


def _spans(tile_rows, band_rows):
    """(first tile row, tile rows) of each band."""
    return [(first, min(band_rows, tile_rows - first)) for first in range(0, tile_rows, band_rows)]


def _band(x, weight, in_scale, first, rows, padding, edges, finish):
    """Tile rows first..first + rows of `conv3x3`; `edges`: bands.EdgeRows of `x` where the
    output is written over it."""
    top, bottom = first * TILE - 1, (first + rows) * TILE + 1
    band = rows_of(x.permute(0, 3, 1, 2), top, bottom, padding) if edges is None else \
        edges.rows_of(top, bottom, (top + 1, bottom - 1))
    _write_band(first, rows, _products(band.permute(0, 2, 3, 1), weight, in_scale, padding),
                **finish)


def _products(band, weight, in_scale, padding):
    """Transform-domain products of an NHWC band with one row above and one below its
    tiles: (36, N * tile rows * tiles across, out)."""
    padded = _padded_columns(band, in_scale, padding)
    tiles = torch.mm(_tile_transform("data", band.dtype), _tile_inputs(padded).reshape(36, -1))
    return torch.bmm(tiles.view(36, -1, band.shape[3]), weight)


def _padded_columns(band, in_scale, padding):
    """The NHWC band scaled by `in_scale`, one column added on each side ("zeros", or
    "reflect": the column next to the edge)."""
    n, height, width, channels = band.shape
    padded = band.new_empty((n, height, width + 2, channels))
    inner = padded[:, :, 1:-1]
    if in_scale is None:
        inner.copy_(band)
    else:
        torch.mul(band, in_scale[:, None, None, :], out=inner)
    if padding == "zeros":
        padded[:, :, 0] = padded[:, :, -1] = 0
    else:
        padded[:, :, 0], padded[:, :, -1] = inner[:, :, 1], inner[:, :, -2]
    return padded


def _tile_inputs(padded):
    """(6, 6, N, tile rows, tiles across, channels): each tile's 6x6 input window, a view of
    the padded band (windows overlap by two rows and two columns)."""
    n, height, width, channels = padded.shape
    row, column = padded.stride(1), padded.stride(2)
    return padded.as_strided((6, 6, n, (height - 2) // TILE, (width - 2) // TILE, channels),
                             (row, column, padded.stride(0), TILE * row, TILE * column, 1),
                             padded.storage_offset())


def _write_band(first, rows, products, out_scale, bias, out, leaky_slope, residual, then):
    n, _, width, channels = out.shape
    tiles = torch.mm(_tile_transform("output", products.dtype), products.view(36, -1))
    # (row in tile, column in tile, N, tile row, tile column, channel) -> the output's order
    tiles = tiles.view(TILE, TILE, n, rows, width // TILE, channels).permute(2, 3, 0, 4, 1, 5)
    band = slice(first * TILE, (first + rows) * TILE)
    dest = out[:, band]
    result = _as_tiles(dest) if residual is None else tiles.new_empty(tiles.shape)
    if out_scale is None:
        torch.add(tiles, bias, out=result)
    else:
        torch.addcmul(bias, tiles, out_scale[:, None, None, None, None, :], out=result)
    if residual is not None:  # the residual may be `out` itself
        torch.add(result, _as_tiles(residual[:, band]), out=_as_tiles(dest))
    if leaky_slope is not None:
        F.leaky_relu_(dest, leaky_slope)
    if then is not None:
        then(band)


def _as_tiles(rows):
    """An NHWC band as (N, tile row, row in tile, tile column, column in tile, channel)."""
    return rows.unflatten(1, (-1, TILE)).unflatten(3, (-1, TILE))
