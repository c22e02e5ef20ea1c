"""The same function as `network.GPEN`, computed with far less memory traffic.

Built once from a loaded GPEN (`FastGPEN(network)`); the straightforward network stays the
oracle it is tested against. What changes, all exact up to float rounding:
- constants are folded ahead of time: equalized-learning-rate scales, the sqrt(2) gain of
  every fused leaky ReLU (carried into the next layer, since a conv is linear and demodulation
  depends only on the weights) and the encoder's gain into the decoder's feature injection;
- biases ride inside the convolutions (or the blur after a transposed conv), leaky ReLUs run in
  place, and the injected features are written straight into the concatenated buffer;
- modulation goes on the weights where weights are smaller than activations (one face, large
  maps) and on the activations elsewhere, so a batch of faces shares one convolution;
- channels-last tensors (weights too), which the CPU and GPU convolution kernels prefer;
- a layer whose output has its input's shape writes over that input, and on the CPU large
  maps are convolved a band of rows at a time; the top level's up-conv, conv and to-RGB run
  together band by band, so its maps, the largest, are never whole. The only full-size
  tensors are the other levels' outputs and the encoder's maps: fewer pages to fault in, and
  bands that stay in cache. Bands are independent of each other (a layer writing over its
  input copies the rows around each band first), so that threads may share them
  (`threads.run_all`);
- on the CPU in fp32, the decoder's 3x3 layers with 128 input channels or more run as
  Winograd F(4x4, 3x3) convolutions (`winograd.py`): a quarter of the multiply-adds, written
  straight into the concatenated buffer (at the top level, into each band). Elsewhere (GPU,
  bf16, narrow layers, the transposed up-convs) the direct convolution is faster;
- the style code, every layer's modulation and the layers on small maps run on one thread
  (`threads.one_thread`); thin products (the RGB input, to-RGB) and the Winograd layers each
  band on one thread (`run_all(in_order=True)`): the output is the same to the bit on any
  thread count.
"""

import contextlib
import functools

import torch
from torch import nn
from torch.nn import functional as F

from .. import winograd
from ..bands import EdgeRows, band_rows, bands, rows_of
from ..cpu import on_free_cores
from ..threads import THIN_CHANNELS, one_thread, run_all
from .network import LEAKY_GAIN, LEAKY_SLOPE
from .to_rgb import FastToRGB

# Output maps of at most this many pixels are computed on one thread (see one_thread): a
# conv's sums were split among threads on 4x4 maps on a 2-core AVX-512 CPU at 1 to 4 threads;
# with a margin. Larger maps are split by rows.
SMALL_MAP = 8 * 8


def _threads_for(height, width, most=SMALL_MAP):
    """One thread for an output map of at most `most` pixels, else the caller's count."""
    return one_thread() if height * width <= most else contextlib.nullcontext()


def _depthwise(kernel, channels):
    return kernel.flip((0, 1)).expand(channels, 1, *kernel.shape).contiguous()


class FastEncoderBlock(nn.Module):
    """Blur + stride-2 conv + bias + leaky ReLU; output left without its sqrt(2) gain."""

    def __init__(self, block, input_gain):
        super().__init__()
        conv = block.conv
        self.downsample = block.downsample
        # channels-last like the activations, or every call would convert it
        self.register_buffer("weight", (conv.weight * conv.scale * input_gain)
                             .contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", block.activate.bias.detach().clone())
        if self.downsample:
            self.register_buffer("blur", _depthwise(block.blur.kernel, conv.weight.shape[1]))

    def forward(self, x):
        n, _, height, width = x.shape
        halved = 2 if self.downsample else 1
        out = torch.empty((n, self.weight.shape[0], height // halved, width // halved),
                          dtype=x.dtype, device=x.device, memory_format=torch.channels_last)
        rows = band_rows(x, self.weight.shape[0], multiple=halved) // halved
        run_all([functools.partial(self.band, x, out, start, stop)
                 for start, stop in bands(out.shape[2], rows)],
                in_order=min(self.weight.shape[:2]) < THIN_CHANNELS)
        return out

    def band(self, x, out, start, stop):
        """Output rows start..stop: a 1x1 conv of the same input rows, or, downsampling, a
        conv of blurred rows 2 start..2 stop, which read input rows 2 start - 2 .. 2 stop + 1
        (the blur pads by 2, the conv by nothing)."""
        if self.downsample:
            blurred = F.conv2d(rows_of(x, 2 * start - 2, 2 * stop + 2), self.blur.to(x.dtype),
                               padding=(0, 2), groups=x.shape[1])
            y = F.conv2d(blurred, self.weight, self.bias, stride=2)
        else:
            y = F.conv2d(x[:, :, start:stop], self.weight, self.bias)
        rows = out[:, :, start:stop]
        rows.copy_(y)
        F.leaky_relu_(rows, LEAKY_SLOPE)


class FastStyledConv(nn.Module):
    """Modulated conv (optionally upsampling) + feature injection + leaky ReLU.

    Input and output are the concatenation [activation, injected feature] without the sqrt(2)
    gain, which `input_gain` restores inside the weights."""

    def __init__(self, styled, input_gain, feature_gain, winograd_on_cpu=False):
        super().__init__()
        conv = styled.conv
        weight = conv.weight[0] * conv.scale
        self.upsample = conv.upsample
        self.winograd_on_cpu = winograd_on_cpu and not self.upsample
        self._winograd_weight = None  # made on first use: only the CPU fp32 path needs it
        self.out_channels = weight.shape[0]
        # an upsampling conv is a transposed conv: keep its weight as (in, out, k, k);
        # channels-last like the activations, or every call would convert it
        self.register_buffer("weight", (weight.transpose(0, 1) if self.upsample else weight)
                             .contiguous(memory_format=torch.channels_last))
        self.register_buffer("weight_squares", weight.pow(2).sum(dim=(2, 3)))
        self.register_buffer("mod_weight", conv.modulation.weight * conv.modulation.scale)
        self.register_buffer("mod_bias", conv.modulation.bias * conv.modulation.lr_mul)
        self.input_gain = input_gain
        bias = styled.activate.bias.detach()
        self.register_buffer("bias", bias[:self.out_channels].clone())
        self.register_buffer("feature_bias", bias[self.out_channels:].clone())
        self.feature_scale = float(styled.noise.weight) * feature_gain
        if self.upsample:
            self.register_buffer("blur", _depthwise(conv.blur.kernel, self.out_channels))

    def forward(self, handed_over, code, feature):
        """`handed_over`: a list holding the input, emptied here so that this layer holds the
        only reference: it writes its output over the input where shapes allow, else frees it
        once convolved (it is the largest tensor alive at that moment)."""
        x = handed_over.pop()
        in_scale, demod = self.modulation(code, x.dtype)
        if self.uses_winograd(x):
            out = self.output_buffer(x)
            winograd.conv3x3(x.permute(0, 2, 3, 1), self.winograd_weight(), in_scale, demod,
                             self.bias, out.permute(0, 2, 3, 1)[..., :self.out_channels],
                             over_input=out is x, then=lambda rows: self.inject(
                                 out[:, :, rows], feature[:, :, rows]))
            return out
        if self.convolves_batch(x):
            # small maps, large weights: modulate the activations, the batch in one call
            y = self.convolve_batch(x, in_scale, demod)
            out = self.output_buffer(x)
            del x
            return self.inject(out, feature, y)
        # large maps, small weights: modulate the weights, one face and a band of rows at a
        # time, so that no full-size temporary is made
        out = self.output_buffer(x)
        tasks = []
        for face in range(x.shape[0]):
            one, weight = x[face:face + 1], self.face_weight(in_scale[face], demod[face], x.dtype)
            spans = self.spans(one)
            edges = EdgeRows(one, spans) if out is x else None  # written over its input
            tasks += [functools.partial(self.band, one, weight, start, stop, edges,
                                        out[face:face + 1], feature[face:face + 1])
                      for start, stop in spans]
        run_all(tasks)
        return out

    def band(self, x, weight, start, stop, edges, out, feature):
        """Output rows start..stop of one face, injected and activated."""
        self.inject(out[:, :, start:stop], feature[:, :, start:stop],
                    self.convolve_band(x, weight, start, stop, edges))

    def modulation(self, code, dtype):
        """Per face: the scale of each input channel (style and input gain) and of each output
        channel (demodulation)."""
        with one_thread():
            style = F.linear(code, self.mod_weight, self.mod_bias)
            demodulation = torch.rsqrt(style.pow(2) @ self.weight_squares.t() + 1e-8)
            return (style * self.input_gain).to(dtype), demodulation.to(dtype)

    def convolves_batch(self, x):
        """Small maps, large weights: modulating the activations lets the batch share one call."""
        return x.shape[2] * x.shape[3] <= self.weight[0].numel()

    def output_buffer(self, x):
        """The input itself where it has the output's shape (the caller has handed it over),
        else a new [conv output, feature] buffer."""
        n, channels, height, width = x.shape
        if self.upsample:
            return _concat_buffer(x, n, self.out_channels, 2 * height, 2 * width)
        if channels == 2 * self.out_channels:
            return x
        return _concat_buffer(x, n, self.out_channels, height, width)

    def inject(self, out, feature, y=None):
        """Write the scaled feature beside the conv output (`y`, unless already in `out`), then
        activate both."""
        if y is not None:
            out[:, :self.out_channels] = y
        torch.add(self.feature_bias[:, None, None].to(out.dtype), feature,
                  alpha=self.feature_scale, out=out[:, self.out_channels:])
        return F.leaky_relu_(out, LEAKY_SLOPE)

    def uses_winograd(self, x):
        return self.winograd_on_cpu and winograd.runs_here(x)

    def winograd_weight(self):
        if self._winograd_weight is None:
            self._winograd_weight = winograd.transform_weight(self.weight)
        return self._winograd_weight

    def spans(self, x):
        """(start, stop) of the bands of output rows of one face's map like `x`."""
        if self.upsample:
            return list(bands(2 * x.shape[2], band_rows(x, self.out_channels, 2)))
        return list(bands(x.shape[2], band_rows(x, self.out_channels)))

    def convolve_band(self, x, weight, start, stop, edges=None):
        """Pre-activation output rows start..stop (bias included) of one face; `edges`:
        bands.EdgeRows where the output is written over the input."""
        if self.upsample:  # output rows start..stop (even) read input rows start / 2 - 1..stop / 2
            return self.convolve_rows(rows_of(x, start // 2 - 1, stop // 2 + 1), weight)
        rows = rows_of(x, start - 1, stop + 1) if edges is None else \
            edges.rows_of(start - 1, stop + 1, (start, stop))
        return self.convolve_rows(rows, weight)

    def face_weight(self, in_scale, demod, dtype):
        """One face's weight with its style folded in."""
        weight = self.weight.to(dtype)
        if self.upsample:  # stored as (in, out, k, k)
            return weight * in_scale[:, None, None, None] * demod[:, None, None]
        return weight * in_scale[:, None, None] * demod[:, None, None, None]

    def convolve_rows(self, rows, weight):
        """Pre-activation output (bias included) of one face's rows, which carry one halo row
        above and one below (zeros outside the map): the rows between the halos, or twice as
        many when upsampling."""
        bias = self.bias.to(rows.dtype)
        if not self.upsample:
            return F.conv2d(rows, weight, bias, padding=(0, 1))
        # the blur needs the transposed conv's rows but its first and last
        transposed = F.conv_transpose2d(rows, weight, stride=2)[:, :, 1:-1]
        return F.conv2d(transposed, self.blur.to(rows.dtype), bias, padding=(0, 1),
                        groups=self.out_channels)

    def convolve_batch(self, x, in_scale, demod):
        x = x * in_scale[:, :, None, None]
        demod = demod[:, :, None, None]
        if self.upsample:
            y = F.conv_transpose2d(x, self.weight.to(x.dtype), stride=2).mul_(demod)
            return F.conv2d(y, self.blur.to(y.dtype), self.bias.to(y.dtype), padding=1,
                            groups=self.out_channels)
        y = F.conv2d(x, self.weight.to(x.dtype), padding=1)
        return torch.addcmul(self.bias[:, None, None].to(y.dtype), y, demod)


def _winograd_rows(conv, rows, in_scale, demod):
    """As `conv.convolve_rows`, on Winograd, the style on the activations: `rows` hold
    `FastLevel.rows_computed` rows between their halos."""
    y = torch.empty((rows.shape[0], conv.out_channels, rows.shape[2] - 2, rows.shape[3]),
                    dtype=rows.dtype, device=rows.device, memory_format=torch.channels_last)
    winograd.conv3x3_rows(rows.permute(0, 2, 3, 1), conv.winograd_weight(), in_scale, demod,
                          conv.bias, y.permute(0, 2, 3, 1))
    return y


def _concat_buffer(like, batch, channels, height, width):
    """Room for [conv output, injected feature]: 2 * channels, channels-last."""
    return torch.empty((batch, 2 * channels, height, width), dtype=like.dtype,
                       device=like.device, memory_format=torch.channels_last)


def _winograd_pays(styled, resolution):
    """Where Winograd beat the direct convolution on a 2-core AVX-512 CPU, and on it limited
    to AVX2: 128 input channels or more (its matrix products dominate) and maps of 32x32 or
    more (tiles enough to pay for the transforms). Smaller maps keep the direct convolution,
    sparing the transformed weights' memory (four times the layer's own, 75 MB for a
    1024-channel layer)."""
    return styled.conv.weight.shape[2] >= 128 and resolution >= 32


class FastLevel(nn.Module):
    """A decoder level: upsampling styled conv, styled conv, to-RGB added to the skip path."""

    def __init__(self, resolution, up_conv, conv, to_rgb, gain):
        super().__init__()
        self.resolution = resolution
        self.up_conv = FastStyledConv(up_conv, gain, gain)  # transposed: never Winograd
        self.conv = FastStyledConv(conv, gain, gain,
                                   winograd_on_cpu=_winograd_pays(conv, resolution))
        self.to_rgb = FastToRGB(to_rgb, gain)

    def forward(self, handed_over, code, feature, skip):
        """(activations, skip); `handed_over` as for FastStyledConv."""
        out = self.conv([self.up_conv(handed_over, code, feature)], code, feature)
        return out, self.to_rgb(out, code, skip)

    def streams(self, x):
        """Where the up-conv goes band by band anyway (see `in_bands`)."""
        return not self.up_conv.convolves_batch(x)

    def rows_convolution(self, x, in_scale, demod):
        """One face's conv of a rows buffer (as `FastStyledConv.convolve_rows`) for maps like
        `x`: on Winograd where it pays, the style on the activations, else in the weights."""
        conv = self.conv
        if conv.uses_winograd(x):
            return functools.partial(_winograd_rows, conv, in_scale=in_scale, demod=demod)
        return functools.partial(conv.convolve_rows,
                                 weight=conv.face_weight(in_scale[0], demod[0], x.dtype))

    def rows_computed(self, x, rows):
        """How many output rows `rows_convolution` computes for `rows` wanted: Winograd
        computes whole tiles (the caller's buffer holds the rows beyond)."""
        return -(-rows // winograd.TILE) * winograd.TILE if self.conv.uses_winograd(x) else rows

    def in_bands(self, x, code, feature, skip):
        """The RGB output of this level, one face and one band of rows at a time, so that its
        activations are never whole (at the top level, the network's largest maps): see
        `rgb_rows`. The bands are independent, shared among threads where allowed."""
        up, conv = self.up_conv, self.conv
        up_scale, up_demod = up.modulation(code, x.dtype)
        in_scale, demod = conv.modulation(code, x.dtype)
        n, _, height, width = x.shape
        rgb = torch.empty((n, 3, 2 * height, 2 * width), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
        tasks = []
        for face in range(n):
            weights = (up.face_weight(up_scale[face], up_demod[face], x.dtype),
                       self.rows_convolution(x, in_scale[face:face + 1], demod[face:face + 1]),
                       self.to_rgb.face_weights(code[face:face + 1], x.dtype))
            one = x[face:face + 1]
            tasks += [functools.partial(self.rgb_rows, one, weights, start, stop,
                                        feature[face:face + 1], skip[face:face + 1],
                                        rgb[face:face + 1]) for start, stop in up.spans(one)]
        run_all(tasks, in_order=conv.uses_winograd(x))  # Winograd's products on one thread
        return rgb

    def rgb_rows(self, x, weights, start, stop, feature, skip, rgb):
        """The rows of `rgb` whose conv output the up-conv rows start..stop complete: the
        up-conv rows from two above `start` (computed again: the band above has them too) to
        `stop` are injected into one buffer, convolved (`weights[1]`: the face's conv of the
        buffer), the conv output written over them and turned to RGB while still in cache,
        the upsampled skip added. Rows beyond the map are zeros."""
        up, conv = self.up_conv, self.conv
        height, width = 2 * x.shape[2], 2 * x.shape[3]
        top = max(start - 2, 0)
        above, below = int(start == 0), int(stop == height)  # the zero rows beyond the map
        wanted = above + stop - top + below - 2
        rows = _concat_buffer(x, 1, up.out_channels, self.rows_computed(x, wanted) + 2, width)
        if above:
            rows[:, :, :1] = 0
        rows[:, :, above + stop - top:] = 0
        up.inject(rows[:, :, above:above + stop - top], feature[:, :, top:stop],
                  up.convolve_band(x, weights[0], top, stop))
        y = weights[1](rows)[:, :, :wanted]
        done = slice(top + 1 - above, top + 1 - above + y.shape[2])  # map rows
        band = rows[:, :, 1:1 + y.shape[2]]  # over the rows just read
        conv.inject(band, feature[:, :, done], y)
        self.to_rgb.rows(band, weights[2], skip, rgb, done.start, done.stop)


class FastGPEN(nn.Module):
    """Drop-in for a GPEN network at inference: same input, same output, same `size`."""

    @torch.no_grad()
    def __init__(self, network):
        super().__init__()
        self.size = network.size
        gain = LEAKY_GAIN
        self.encoder = nn.ModuleList(
            FastEncoderBlock(block, 1.0 if index == 0 else gain)
            for index, block in enumerate(network.encoder_blocks))
        final = network.style_layer
        self.register_buffer("final_weight", final.weight * final.scale * gain)
        self.register_buffer("final_bias", final.bias * final.lr_mul)
        decoder = network.generator
        mapping = decoder.mapping
        for index, layer in enumerate(mapping):
            self.register_buffer(f"mapping_weight_{index}", layer.weight * layer.scale)
            self.register_buffer(f"mapping_bias_{index}", layer.bias * layer.lr_mul)
        self.n_mlp = len(mapping)
        self.register_buffer("constant", decoder.input.input.detach().clone())
        self.conv1 = FastStyledConv(decoder.conv1, 1.0, gain)
        self.to_rgb1 = FastToRGB(decoder.to_rgb1, gain)
        self.levels = nn.ModuleList(FastLevel(*level, gain) for level in decoder.levels())

    def style_code(self, features):
        """The decoder's style (the mapping network's output) from the encoder's last map."""
        flat = features.flatten(1).to(self.final_weight.dtype)
        code = F.leaky_relu(F.linear(flat, self.final_weight, self.final_bias), LEAKY_SLOPE)
        code = code * LEAKY_GAIN
        code = code * torch.rsqrt(code.pow(2).mean(dim=1, keepdim=True) + 1e-8)  # PixelNorm
        for index in range(self.n_mlp):
            code = F.linear(code, getattr(self, f"mapping_weight_{index}"),
                            getattr(self, f"mapping_bias_{index}"))
            code = F.leaky_relu(code, LEAKY_SLOPE) * LEAKY_GAIN
        return code

    def forward(self, x):
        """(N, 3, S, S) RGB in [-1, 1] to the same. On the CPU, called on its own, its threads
        follow the cores other programs leave free; a restorer's plan is taken as it is."""
        return on_free_cores(self.generate, x)

    def generate(self, x):
        x = x.contiguous(memory_format=torch.channels_last)
        features = []
        for block in self.encoder:
            halved = 2 if block.downsample else 1
            with _threads_for(x.shape[2] // halved, x.shape[3] // halved):
                x = block(x)
            features.append(x)
        features.reverse()  # 4x4 first, as the decoder consumes them
        constant = self.constant.to(x.dtype).expand(x.shape[0], -1, -1, -1)
        del x
        with one_thread():
            code = self.style_code(features[0])
            out = self.conv1([constant.contiguous(memory_format=torch.channels_last)], code,
                             features[0])
            skip = self.to_rgb1(out, code)
        top = len(self.levels) - 1
        for index, level in enumerate(self.levels):
            feature = features[index + 1]
            features[index + 1] = None  # its last use: free it as soon as the level is done
            if index == top and level.streams(out):
                return level.in_bands(out, code, feature, skip).contiguous()
            handed_over = [out]
            del out  # the layer now holds the only reference to its input
            with _threads_for(level.resolution, level.resolution):
                out, skip = level(handed_over, code, feature, skip)
            del feature
        return skip.contiguous()
