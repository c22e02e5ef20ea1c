"""3x3 convolution by Winograd's minimal filtering F(4x4, 3x3), for the fast path on the CPU.

Directly, a 4x4 output tile costs 144 multiply-adds per channel pair. Carried into the 36-point
transform domain of Lavin and Gray ("Fast Algorithms for Convolutional Neural Networks", 2016)
it costs 36: the convolution becomes 36 independent (tiles x in) @ (in x out) matrix products.
The transforms themselves are a few additions per value, so the saving is real only where
channels are many and those products dominate. Rounding error is a few times that of direct
convolution (about 1e-5 relative in fp32), which is why this runs in fp32 only.

Tiles are done a band of rows at a time, so the transformed band stays small and warm in cache,
and results go straight into the caller's (possibly strided) output.
"""

import functools

import torch
from torch.nn import functional as F

from .bands import EdgeRows, cpu_path, rows_of
from .threads import run_all

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


def _input_transform(d, out):
    """B^T along one axis: the six positions d[0..5] of every tile -> out[0..5]."""
    a = torch.add(d[4], d[2], alpha=-4)
    b = torch.add(d[3], d[1], alpha=-4)
    torch.add(a, b, out=out[1])
    torch.sub(a, b, out=out[2])
    torch.sub(d[4], d[2], out=a)
    torch.sub(d[3], d[1], out=b)
    torch.add(a, b, alpha=2, out=out[3])
    torch.sub(a, b, alpha=2, out=out[4])
    torch.add(d[4], d[2], alpha=-5, out=out[0]).add_(d[0], alpha=4)
    torch.add(d[5], d[3], alpha=-5, out=out[5]).add_(d[1], alpha=4)


def _output_transform(m, out):
    """A^T along one axis: the six transform-domain positions m[0..5] -> four outputs."""
    p, q = m[1] + m[2], m[1] - m[2]
    s, t = m[3] + m[4], m[3] - m[4]
    torch.add(p, s, out=out[0]).add_(m[0])
    torch.add(q, t, alpha=2, out=out[1])
    torch.add(p, s, alpha=4, out=out[2])
    torch.add(q, t, alpha=8, out=out[3]).add_(m[5])


def runs_here(x):
    """Whether a map like `x` may be convolved this way: on the CPU's path, in fp32 (not
    under autocast, which would round its products to 16 bits)."""
    return cpu_path(x) and x.dtype == torch.float32 and \
        not torch.is_autocast_enabled(x.device.type)


TILE_BAND_BYTES = 16 << 20  # a band's transformed tiles: warm in cache, under glibc's 32 MB mmap cap


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
    n, height, width, channels = x.shape
    tiles_across, tiles_down = width // TILE, height // TILE
    band_tiles = band_tiles or max(1, TILE_BAND_BYTES // (36 * channels * x.element_size()))
    band_rows = max(1, band_tiles // (n * tiles_across))
    finish = dict(out_scale=out_scale, bias=bias, out=out, leaky_slope=leaky_slope,
                  residual=residual, then=then)
    spans = [(first, min(band_rows, tiles_down - first))
             for first in range(0, tiles_down, band_rows)]
    edges = EdgeRows(x.permute(0, 3, 1, 2), [(first * TILE, (first + rows) * TILE)
                                             for first, rows in spans]) if over_input else None
    # each band's products on one thread: MKL may split a product's sums among its threads
    run_all([functools.partial(_band, x, weight, in_scale, first, rows, padding, edges, finish)
             for first, rows in spans], in_order=True)
    return out


def _band(x, weight, in_scale, first, rows, padding, edges, finish):
    products = _band_products(x, weight, in_scale, first, rows, padding, edges)
    _write_band(first, rows, products, **finish)


def _band_products(x, weight, in_scale, first, rows, padding, edges=None):
    """Transform-domain products of the tile rows first..first + rows: (6, 6, N, rows, tiles
    across, out); `edges`: bands.EdgeRows of `x` where the output is written over it."""
    n, height, width, channels = x.shape
    tiles_across = width // TILE
    top, bottom = first * TILE - 1, (first + rows) * TILE + 1
    band = rows_of(x.permute(0, 3, 1, 2), top, bottom, padding) if edges is None else \
        edges.rows_of(top, bottom, (top + 1, bottom - 1))
    band = F.pad(band.permute(0, 2, 3, 1), (0, 0, 1, 1),
                 mode="constant" if padding == "zeros" else padding)
    if in_scale is not None:
        band = band.mul_(in_scale[:, None, None, :])
    down = band.new_empty((6, n, rows, width + 2, channels))
    _input_transform([band[:, k:k + TILE * rows:TILE] for k in range(6)], down)
    del band
    tiles = down.new_empty((6, 6, n, rows, tiles_across, channels))
    for i in range(6):
        _input_transform([down[i][:, :, k:k + TILE * tiles_across:TILE] for k in range(6)],
                         tiles[i])
    del down
    products = torch.bmm(tiles.view(36, -1, channels), weight)
    return products.view(6, 6, n, rows, tiles_across, weight.shape[2])


def _write_band(first, rows, products, out_scale, bias, out, leaky_slope, residual, then):
    across = products.new_empty((TILE,) + products.shape[1:])
    _output_transform(products, across)
    band = slice(first * TILE, (first + rows) * TILE)
    dest = out[:, band]
    result = dest if residual is None else torch.empty_like(dest)  # the residual may be `out`
    for a in range(TILE):
        _output_transform(across[a], [result[:, a::TILE, b::TILE] for b in range(TILE)])
    if out_scale is None:
        result.add_(bias)
    else:
        torch.addcmul(bias, result, out_scale[:, None, None, :], out=result)
    if residual is not None:
        torch.add(result, residual[:, band], out=dest)
    if leaky_slope is not None:
        F.leaky_relu_(dest, leaky_slope)
    if then is not None:
        then(band)
