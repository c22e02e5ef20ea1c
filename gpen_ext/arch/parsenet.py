"""Face parsing as the official GPEN pipeline does it (facexlib's ParseNet at 512), computed
with fewer operations.

Built once from facexlib's loaded ParseNet (`FastParseNet(parsenet)`), which stays the oracle
it is tested against. The same function, up to float rounding:
- batch norm folded into the convolutions, leaky ReLUs in place, channels-last;
- an upsampling block's nearest-neighbour 2x upsampling and 3x3 convolution are one
  transposed convolution of the small map: each output pixel then reads 2x2 input pixels
  instead of 3x3 (the reflection padding of the upsampled map is the replication padding of
  the small one), and the block's shortcut and first convolution share that one call;
- on the CPU in fp32, wide 3x3 layers run as Winograd convolutions (`winograd.py`), others
  as direct convolutions a band of rows at a time (`bands.py`); the residual additions and
  activations happen in those bands;
- only the parsing logits are computed (ParseNet's image output is never used).
Faces go through one at a time: their maps at 512x512 are the largest, so a batch would only
multiply memory.
"""

import functools

import torch
from torch import nn
from torch.nn import functional as F

from . import winograd
from .bands import band_rows, bands, rows_of
from .threads import THIN_CHANNELS, run_all

# Nearest-neighbour 2x upsampling then a 3-tap filter, as a stride-2 transposed filter of 4
# taps: even outputs read (k0, k1 + k2) of the input rows (i - 1, i), odd ones (k0 + k1, k2)
# of (i, i + 1); transposed convolution taps, with padding 3 over a replicated border.
_UPSAMPLED_TAPS = torch.tensor([[0.0, 0, 1], [0, 1, 1], [1, 1, 0], [1, 0, 0]])


def fold_batch_norm(layer):
    """(weight, bias) of a facexlib ConvLayer's convolution with its batch norm folded in."""
    conv, norm = layer.conv2d, getattr(layer.norm, "norm", None)
    weight = conv.weight.detach().float()
    bias = conv.bias.detach().float() if conv.bias is not None else torch.zeros(weight.shape[0])
    if isinstance(norm, nn.BatchNorm2d):
        scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
        weight = weight * scale[:, None, None, None]
        bias = (bias - norm.running_mean) * scale + norm.bias.detach()
    return weight, bias


def leaky_slope(layer):
    """The layer's leaky ReLU slope, or None where it has no activation."""
    activation = getattr(layer.relu, "func", None)
    return activation.negative_slope if isinstance(activation, nn.LeakyReLU) else None


class FastConv(nn.Module):
    """A 3x3 convolution with reflection padding (stride 1 or 2), batch norm folded in, and
    optionally a residual added and a leaky ReLU, all a band of rows at a time."""

    def __init__(self, layer):
        super().__init__()
        weight, bias = fold_batch_norm(layer)
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", bias)
        self.stride = layer.conv2d.stride[0]
        self.slope = leaky_slope(layer)
        self._winograd_weight = None

    def forward(self, x, residual=None, out=None):
        """`out`: where to write (default: a new map); it may be `residual` itself."""
        n, _, height, width = x.shape
        out_channels = self.weight.shape[0]
        if out is None:
            out = _empty(x, out_channels, height // self.stride, width // self.stride)
        if self.uses_winograd(x):
            nhwc = lambda t: None if t is None else t.permute(0, 2, 3, 1)  # noqa: E731
            winograd.conv3x3(nhwc(x), self.winograd_weight(), None, None, self.bias, nhwc(out),
                             padding="reflect", leaky_slope=self.slope, residual=nhwc(residual))
            return out
        stride = self.stride  # bands sized by the input rows they read

        def band(start, stop):
            rows = rows_of(x, stride * start - 1, stride * (stop - 1) + 2, "reflect")
            y = F.conv2d(F.pad(rows, (1, 1, 0, 0), mode="reflect"), self.weight, self.bias,
                         stride=stride)
            written = out[:, :, start:stop]
            if residual is not None:
                y += residual[:, :, start:stop]
            written.copy_(y)
            if self.slope is not None:
                F.leaky_relu_(written, self.slope)
        run_all([functools.partial(band, start, stop) for start, stop in
                 bands(out.shape[2], band_rows(x, out_channels, stride) // stride)],
                in_order=min(self.weight.shape[:2]) < THIN_CHANNELS)
        return out

    def uses_winograd(self, x):
        """Where Winograd beat the direct convolution on a 2-core AVX-512 CPU by enough to pay
        for its transformed weights (four times the layer's own): stride 1, 256 input
        channels or more, maps of 64x64 or more (at 32x32 the twenty body layers would hold
        190 MB to save 20 ms a face), fp32."""
        return self.stride == 1 and self.weight.shape[1] >= 256 and min(x.shape[2:]) >= 64 and \
            winograd.runs_here(x)

    def winograd_weight(self):
        if self._winograd_weight is None:
            self._winograd_weight = winograd.transform_weight(self.weight)
        return self._winograd_weight


def _empty(like, channels, height, width):
    return torch.empty((like.shape[0], channels, height, width), dtype=like.dtype,
                       device=like.device, memory_format=torch.channels_last)


class FastDownBlock(nn.Module):
    """A residual block that halves the map: shortcut conv (stride 2) + conv, conv (stride 2)."""

    def __init__(self, block):
        super().__init__()
        self.shortcut = FastConv(block.shortcut_func)
        self.conv1 = FastConv(block.conv1)
        self.conv2 = FastConv(block.conv2)

    def forward(self, x):
        out = self.shortcut(x)
        return self.conv2(self.conv1(x), residual=out, out=out)


class FastBodyBlock(nn.Module):
    """A residual block at constant size: x + conv(conv(x))."""

    def __init__(self, block):
        super().__init__()
        self.conv1 = FastConv(block.conv1)
        self.conv2 = FastConv(block.conv2)

    def forward(self, x):
        return self.conv2(self.conv1(x), residual=x)


class FastUpBlock(nn.Module):
    """A residual block that doubles the map: its shortcut and first conv (each a conv of the
    upsampled map) as one transposed convolution of the small map, then the second conv."""

    def __init__(self, block):
        super().__init__()
        shortcut_weight, shortcut_bias = fold_batch_norm(block.shortcut_func)
        conv_weight, conv_bias = fold_batch_norm(block.conv1)
        self.channels = conv_weight.shape[0]
        weight = torch.cat([shortcut_weight, conv_weight])
        taps = _UPSAMPLED_TAPS.to(weight.dtype)
        transposed = torch.einsum("ya,oiab,xb->ioyx", taps, weight, taps)
        self.register_buffer("weight", transposed.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", torch.cat([shortcut_bias, conv_bias]))
        self.slope = leaky_slope(block.conv1)
        self.conv2 = FastConv(block.conv2)

    def forward(self, x):
        n, _, height, width = x.shape
        both = _empty(x, 2 * self.channels, 2 * height, 2 * width)

        def band(start, stop):
            # output rows start..stop (even) read input rows start / 2 - 1..stop / 2
            rows = rows_of(x, start // 2 - 1, stop // 2 + 1, "replicate")
            y = F.conv_transpose2d(F.pad(rows, (1, 1, 0, 0), mode="replicate"), self.weight,
                                   self.bias, stride=2, padding=3)
            both[:, :, start:stop] = y
            F.leaky_relu_(both[:, self.channels:, start:stop], self.slope)
        run_all([functools.partial(band, start, stop)
                 for start, stop in bands(2 * height, band_rows(both, multiple=2))])
        shortcut, conv = both[:, :self.channels], both[:, self.channels:]
        return self.conv2(conv, residual=shortcut, out=shortcut)


class FastParseNet(nn.Module):
    """Drop-in for facexlib's ParseNet at inference, logits only: (N, 3, S, S) in [-1, 1] to
    (N, classes, S, S)."""

    @torch.no_grad()
    def __init__(self, parsenet):
        super().__init__()
        first, *down = parsenet.encoder
        self.first = FastConv(first)
        self.encoder = nn.ModuleList(FastDownBlock(block) for block in down)
        self.body = nn.ModuleList(FastBodyBlock(block) for block in parsenet.body)
        self.decoder = nn.ModuleList(FastUpBlock(block) for block in parsenet.decoder)
        self.logits = FastConv(parsenet.out_mask_conv)

    def forward(self, x):
        return torch.cat([self.one_face(face[None]) for face in x])

    def one_face(self, x):
        x = self.first(x.contiguous(memory_format=torch.channels_last))
        for block in self.encoder:
            x = block(x)
        features = x
        for block in self.body:
            x = block(x)
        x = x + features
        for block in self.decoder:
            x = block(x)
        with torch.autocast(x.device.type, enabled=False):  # the classes come from the logits
            return self.logits(x.float())
