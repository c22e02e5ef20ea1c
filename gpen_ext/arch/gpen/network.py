"""GPEN: a StyleGAN2 decoder driven by an encoder of the degraded face.

The encoder halves the face down to 4x4; its last map becomes the style code and every map
is concatenated, as "noise", into the decoder layer of the same resolution. This module is
the straightforward formulation of the published network and the oracle for the fast path
(`fast.py`); module and parameter names follow the released checkpoints so that they load
with strict key matching.
"""

import math

import torch
from torch import nn
from torch.nn import functional as F

from .config import channels_for

BLUR_TAPS = (1.0, 3.0, 3.0, 1.0)
LEAKY_SLOPE = 0.2
LEAKY_GAIN = math.sqrt(2.0)


def blur_kernel(gain=1.0):
    taps = torch.tensor(BLUR_TAPS)
    kernel = torch.outer(taps, taps)
    return kernel / kernel.sum() * gain


def upfirdn2d(x, kernel, up=1, down=1, pad=(0, 0)):
    """Upsample by zero insertion, pad, filter each channel with `kernel`, then subsample."""
    n, c, h, w = x.shape
    if up > 1:
        x = x.reshape(n, c, h, 1, w, 1)
        x = F.pad(x, (0, up - 1, 0, 0, 0, up - 1))
        x = x.reshape(n, c, h * up, w * up)
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = torch.flip(kernel, (0, 1)).to(x.dtype).expand(c, 1, *kernel.shape)
    x = F.conv2d(x, weight, groups=c)
    return x[:, :, ::down, ::down] if down > 1 else x


def fused_leaky_relu(x, bias):
    shape = (1, -1) + (1,) * (x.dim() - 2)
    return F.leaky_relu(x + bias.view(shape), LEAKY_SLOPE) * LEAKY_GAIN


class FusedLeakyReLU(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return fused_leaky_relu(x, self.bias)


class PixelNorm(nn.Module):
    def forward(self, x):
        return x * torch.rsqrt(x.pow(2).mean(dim=1, keepdim=True) + 1e-8)


class Blur(nn.Module):
    """Low-pass filter applied around resampling, to avoid aliasing."""

    def __init__(self, pad, gain=1.0):
        super().__init__()
        self.pad = pad
        self.register_buffer("kernel", blur_kernel(gain))

    def forward(self, x):
        return upfirdn2d(x, self.kernel, pad=self.pad)


class Upsample(nn.Module):
    """2x upsampling of the RGB skip path: zero insertion then the blur filter."""

    def __init__(self):
        super().__init__()
        self.register_buffer("kernel", blur_kernel(gain=4.0))

    def forward(self, x):
        return upfirdn2d(x, self.kernel, up=2, pad=(2, 1))


class EqualLinear(nn.Module):
    """Linear layer with equalized learning rate: weights are rescaled at run time."""

    def __init__(self, in_dim, out_dim, bias_init=0.0, lr_mul=1.0, activate=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_dim, in_dim) / lr_mul)
        self.bias = nn.Parameter(torch.full((out_dim,), float(bias_init)))
        self.scale = lr_mul / math.sqrt(in_dim)
        self.lr_mul = lr_mul
        self.activate = activate

    def forward(self, x):
        weight, bias = self.weight * self.scale, self.bias * self.lr_mul
        if self.activate:
            return fused_leaky_relu(F.linear(x, weight), bias)
        return F.linear(x, weight, bias)


class EqualConv2d(nn.Module):
    def __init__(self, in_channel, out_channel, kernel_size, stride=1, padding=0):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(out_channel, in_channel, kernel_size, kernel_size))
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size ** 2)
        self.stride = stride
        self.padding = padding

    def forward(self, x):
        return F.conv2d(x, self.weight * self.scale, stride=self.stride, padding=self.padding)


class EncoderBlock(nn.Sequential):
    """Encoder stage: 1x1 projection at full size, or blur + stride-2 3x3 conv that halves it.

    The blur pads by 2 on each side and the conv by nothing (the reference's layout; the same
    output size as pad 1 + conv pad 1, but not the same values at the border)."""

    def __init__(self, in_channel, out_channel, downsample):
        if downsample:
            layers = [Blur(pad=(2, 2)), EqualConv2d(in_channel, out_channel, 3, stride=2)]
        else:
            layers = [EqualConv2d(in_channel, out_channel, 1)]
        super().__init__(*layers, FusedLeakyReLU(out_channel))
        self.downsample = downsample

    @property
    def blur(self):
        return self[0] if self.downsample else None

    @property
    def conv(self):
        return self[-2]

    @property
    def activate(self):
        return self[-1]


class ModulatedConv2d(nn.Module):
    """Convolution whose weights are scaled per sample by the style, then demodulated."""

    def __init__(self, in_channel, out_channel, kernel_size, style_dim, demodulate=True,
                 upsample=False):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(1, out_channel, in_channel, kernel_size, kernel_size))
        self.modulation = EqualLinear(style_dim, in_channel, bias_init=1.0)
        self.scale = 1.0 / math.sqrt(in_channel * kernel_size ** 2)
        self.demodulate = demodulate
        self.upsample = upsample
        if upsample:
            self.blur = Blur(pad=(1, 1), gain=4.0)

    def sample_weights(self, style):
        """Per-sample weights, (N, out, in, k, k)."""
        weight = self.scale * self.weight * self.modulation(style)[:, None, :, None, None]
        if self.demodulate:
            weight = weight * torch.rsqrt(weight.pow(2).sum(dim=(2, 3, 4), keepdim=True) + 1e-8)
        return weight

    def forward(self, x, style):
        n, in_channel, h, w = x.shape
        weight = self.sample_weights(style)
        _, out_channel, _, k, _ = weight.shape
        x = x.reshape(1, n * in_channel, h, w)
        if self.upsample:
            weight = weight.transpose(1, 2).reshape(n * in_channel, out_channel, k, k)
            out = F.conv_transpose2d(x, weight, stride=2, groups=n)
            out = self.blur(out.reshape(n, out_channel, *out.shape[2:]))
        else:
            weight = weight.reshape(n * out_channel, in_channel, k, k)
            out = F.conv2d(x, weight, padding=k // 2, groups=n)
            out = out.reshape(n, out_channel, *out.shape[2:])
        return out


class NoiseInjection(nn.Module):
    """GPEN's twist on StyleGAN2 noise: the encoder map is concatenated, not added."""

    def __init__(self):
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(1))

    def forward(self, x, features):
        return torch.cat((x, self.weight * features), dim=1)


class StyledConv(nn.Module):
    def __init__(self, in_channel, out_channel, style_dim, upsample=False):
        super().__init__()
        self.conv = ModulatedConv2d(in_channel, out_channel, 3, style_dim, upsample=upsample)
        self.noise = NoiseInjection()
        self.activate = FusedLeakyReLU(2 * out_channel)

    def forward(self, x, style, features):
        return self.activate(self.noise(self.conv(x, style), features))


class ToRGB(nn.Module):
    def __init__(self, in_channel, style_dim, upsample=True):
        super().__init__()
        if upsample:
            self.upsample = Upsample()
        self.conv = ModulatedConv2d(in_channel, 3, 1, style_dim, demodulate=False)
        self.bias = nn.Parameter(torch.zeros(1, 3, 1, 1))

    def forward(self, x, style, skip=None):
        out = self.conv(x, style) + self.bias
        if skip is not None:
            out = out + self.upsample(skip)
        return out


class ConstantInput(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.input = nn.Parameter(torch.randn(1, channels, 4, 4))

    def forward(self, batch):
        return self.input.expand(batch, -1, -1, -1)


class StyleDecoder(nn.Module):
    """StyleGAN2 synthesis network with concatenated feature injection at every layer."""

    def __init__(self, size, style_dim, n_mlp, channels, lr_mlp=0.01):
        super().__init__()
        self.style = nn.Sequential(PixelNorm(), *(
            EqualLinear(style_dim, style_dim, lr_mul=lr_mlp, activate=True) for _ in range(n_mlp)))
        self.input = ConstantInput(channels[4])
        self.conv1 = StyledConv(channels[4], channels[4], style_dim)
        self.to_rgb1 = ToRGB(2 * channels[4], style_dim, upsample=False)
        self.convs = nn.ModuleList()
        self.to_rgbs = nn.ModuleList()
        in_channel = channels[4]
        for log_res in range(3, int(math.log2(size)) + 1):
            out_channel = channels[2 ** log_res]
            self.convs.append(StyledConv(2 * in_channel, out_channel, style_dim, upsample=True))
            self.convs.append(StyledConv(2 * out_channel, out_channel, style_dim))
            self.to_rgbs.append(ToRGB(2 * out_channel, style_dim))
            in_channel = out_channel

    @property
    def mapping(self):
        """The style MLP's linear layers (after its PixelNorm)."""
        return list(self.style)[1:]

    def levels(self):
        """(resolution, upsampling conv, conv, to-RGB) for each level above 4x4."""
        return [(8 << index, up_conv, conv, to_rgb) for index, (up_conv, conv, to_rgb)
                in enumerate(zip(self.convs[::2], self.convs[1::2], self.to_rgbs))]

    def forward(self, code, features):
        """`features`: encoder maps from 4x4 up to full size, one per resolution."""
        style = self.style(code)
        out = self.conv1(self.input(code.shape[0]), style, features[0])
        skip = self.to_rgb1(out, style)
        for (_, up_conv, conv, to_rgb), feature in zip(self.levels(), features[1:]):
            out = conv(up_conv(out, style, feature), style, feature)
            skip = to_rgb(out, style, skip)
        return skip


class GPEN(nn.Module):
    """GPEN face restorer ("FullGenerator"): (N, 3, S, S) in [-1, 1] to the same."""

    def __init__(self, size, style_dim=512, n_mlp=8, channel_multiplier=2, narrow=1.0):
        super().__init__()
        if size < 8 or size & (size - 1) or size > 2048:
            raise ValueError(f"GPEN size must be a power of two between 8 and 2048, got {size}")
        self.size = size
        self.style_dim = style_dim
        self.n_mlp = n_mlp
        self.channel_multiplier = channel_multiplier
        self.narrow = narrow
        channels = channels_for(size, channel_multiplier, narrow)
        self.n_stages = int(math.log2(size)) - 1
        self.ecd0 = nn.Sequential(EncoderBlock(3, channels[size], downsample=False))
        for stage in range(1, self.n_stages):
            res = size >> stage
            setattr(self, f"ecd{stage}",
                    nn.Sequential(EncoderBlock(channels[2 * res], channels[res], downsample=True)))
        self.final_linear = nn.Sequential(
            EqualLinear(channels[4] * 16, style_dim, activate=True))
        self.generator = StyleDecoder(size, style_dim, n_mlp, channels)

    @property
    def encoder_blocks(self):
        """The encoder's blocks, full size first (each `ecdN` wraps one)."""
        return [getattr(self, f"ecd{stage}")[0] for stage in range(self.n_stages)]

    @property
    def style_layer(self):
        """The linear layer that turns the 4x4 encoder map into the style code."""
        return self.final_linear[0]

    def encode(self, x):
        """Encoder maps from full size down to 4x4."""
        features = []
        for block in self.encoder_blocks:
            x = block(x)
            features.append(x)
        return features

    def forward(self, x):
        features = self.encode(x)
        code = self.final_linear(features[-1].flatten(1))
        return self.generator(code, features[::-1])
