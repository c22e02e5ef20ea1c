"""Winograd F(4x4, 3x3) convolution against the direct convolution."""

import pytest
import torch
from torch.nn import functional as F

from gpen_ext.arch import winograd
from gpen_ext.arch.threads import bands_shared_by


def direct(x, weight, in_scale, out_scale, bias):
    y = F.conv2d(x * in_scale[:, :, None, None], weight, padding=1)
    return y * out_scale[:, :, None, None] + bias[:, None, None]


def random_layer(seed, n, channels, out_channels, height, width):
    """A float64 map and a styled layer's weight, per-image scales and bias."""
    torch.manual_seed(seed)
    x = torch.randn(n, channels, height, width, dtype=torch.float64)
    weight = torch.randn(out_channels, channels, 3, 3, dtype=torch.float64)
    in_scale = torch.rand(n, channels, dtype=torch.float64) + 0.5
    out_scale = torch.rand(n, out_channels, dtype=torch.float64) + 0.5
    bias = torch.randn(out_channels, dtype=torch.float64)
    return x, weight, in_scale, out_scale, bias


@pytest.mark.parametrize("band_tiles", [1, 7, 512])  # one tile row per band, ragged bands, one
def test_conv3x3_is_exact_in_float64_into_a_strided_output(band_tiles):
    n, channels, out_channels, height, width = 2, 5, 3, 12, 20
    x, weight, in_scale, out_scale, bias = random_layer(
        band_tiles, n, channels, out_channels, height, width)
    buffer = torch.full((n, height, width, 2 * out_channels), 7.0, dtype=torch.float64)
    winograd.conv3x3(x.permute(0, 2, 3, 1).contiguous(), winograd.transform_weight(weight),
                     in_scale, out_scale, bias, buffer[..., :out_channels], band_tiles)
    expected = direct(x, weight, in_scale, out_scale, bias).permute(0, 2, 3, 1)
    assert (buffer[..., :out_channels] - expected).abs().max().item() < 1e-10
    assert (buffer[..., out_channels:] == 7.0).all()  # the rest of the buffer is untouched


@pytest.mark.parametrize("workers", [1, 2])
@pytest.mark.parametrize("band_tiles", [1, 7, 512])
def test_conv3x3_may_write_over_its_own_input(band_tiles, workers):
    """A decoder layer maps [activation, feature] to [its output, next feature] in one buffer:
    the output goes over the first half of the very channels it reads, its bands in any order
    (two threads sharing them)."""
    torch.manual_seed(band_tiles)
    n, out_channels, height, width = 2, 3, 16, 8
    buffer = torch.randn(n, height, width, 2 * out_channels, dtype=torch.float64)
    weight = torch.randn(out_channels, 2 * out_channels, 3, 3, dtype=torch.float64)
    in_scale = torch.rand(n, 2 * out_channels, dtype=torch.float64) + 0.5
    out_scale = torch.rand(n, out_channels, dtype=torch.float64) + 0.5
    bias = torch.randn(out_channels, dtype=torch.float64)
    expected = direct(buffer.permute(0, 3, 1, 2), weight, in_scale, out_scale, bias)
    with bands_shared_by(workers, 1):
        winograd.conv3x3(buffer, winograd.transform_weight(weight), in_scale, out_scale, bias,
                         buffer[..., :out_channels], band_tiles, over_input=True)
    assert (buffer[..., :out_channels] - expected.permute(0, 2, 3, 1)).abs().max().item() < 1e-10


def test_conv3x3_in_float32_stays_within_rounding_of_the_direct_convolution():
    torch.manual_seed(0)
    x = torch.randn(1, 256, 32, 32)
    weight = torch.randn(64, 256, 3, 3) / 48  # unit-variance outputs, as after demodulation
    ones_in, ones_out, zeros = torch.ones(1, 256), torch.ones(1, 64), torch.zeros(64)
    out = torch.empty(1, 32, 32, 64)
    winograd.conv3x3(x.permute(0, 2, 3, 1), winograd.transform_weight(weight), ones_in,
                     ones_out, zeros, out)
    exact = F.conv2d(x.double(), weight.double(), padding=1).permute(0, 2, 3, 1)
    assert (out - exact).abs().max().item() < 1e-4


@pytest.mark.parametrize("band_tiles", [1, 7, 512])
def test_reflection_padding_residual_and_activation_onto_the_residual(band_tiles):
    """The parser's layers: reflection padding, then a residual added and a leaky ReLU, the
    output written over the residual itself."""
    torch.manual_seed(band_tiles)
    n, channels, out_channels, height, width = 2, 5, 3, 12, 20
    x = torch.randn(n, channels, height, width, dtype=torch.float64)
    weight = torch.randn(out_channels, channels, 3, 3, dtype=torch.float64)
    bias = torch.randn(out_channels, dtype=torch.float64)
    residual = torch.randn(n, height, width, out_channels, dtype=torch.float64)
    expected = F.leaky_relu(F.conv2d(F.pad(x, (1, 1, 1, 1), mode="reflect"), weight, bias)
                            + residual.permute(0, 3, 1, 2), 0.2).permute(0, 2, 3, 1)
    winograd.conv3x3(x.permute(0, 2, 3, 1).contiguous(), winograd.transform_weight(weight),
                     None, None, bias, residual, band_tiles, padding="reflect", leaky_slope=0.2,
                     residual=residual)
    assert (residual - expected).abs().max().item() < 1e-10


@pytest.mark.parametrize("band_tiles", [1, 7, 512])
def test_a_band_with_its_own_halo_rows_gives_the_rows_between(band_tiles, monkeypatch):
    """The top level's streamed conv: a band of rows carrying the rows above and below it
    (zeros beyond the map) gives the convolution of the rows between, in sub-bands of any
    size."""
    monkeypatch.setattr(winograd, "MIN_BAND_TILES", band_tiles)
    monkeypatch.setattr(winograd, "TILE_BAND_BYTES", 1)
    n, channels, out_channels, height, width = 1, 5, 3, 24, 20
    x, weight, in_scale, out_scale, bias = random_layer(
        band_tiles, n, channels, out_channels, height, width)
    expected = direct(x, weight, in_scale, out_scale, bias).permute(0, 2, 3, 1)
    rows = F.pad(x, (0, 0, 1, 1))[:, :, 8:8 + 12 + 2]  # map rows 7..20: a halo each side
    out = torch.full((n, 12, width, out_channels), 7.0, dtype=torch.float64)
    winograd.conv3x3_rows(rows.permute(0, 2, 3, 1), winograd.transform_weight(weight),
                          in_scale, out_scale, bias, out)
    assert (out - expected[:, 8:20]).abs().max().item() < 1e-10
