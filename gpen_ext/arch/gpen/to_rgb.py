"""The to-RGB layers of the fast path (see fast.py) and the skip path's upsampling: each
level's RGB, the image the decoder builds up level by level."""

import functools

import torch
from torch import nn
from torch.nn import functional as F

from ..bands import band_rows, bands, rows_of
from ..threads import one_thread, run_all

class FastToRGB(nn.Module):
    def __init__(self, to_rgb, input_gain):
        super().__init__()
        conv = to_rgb.conv
        self.register_buffer("weight", conv.weight[0, :, :, 0, 0] * conv.scale)
        self.register_buffer("mod_weight", conv.modulation.weight * conv.modulation.scale)
        self.register_buffer("mod_bias", conv.modulation.bias * conv.modulation.lr_mul)
        self.register_buffer("bias", to_rgb.bias.detach().flatten().clone())
        self.input_gain = input_gain

    def forward(self, x, code, skip=None):
        """RGB of the map `x`, plus the 2x upsampled `skip`; large maps a band at a time."""
        weight = self.face_weights(code, x.dtype)
        n, _, height, width = x.shape
        out = torch.empty((n, 3, height, width), dtype=x.dtype, device=x.device,
                          memory_format=torch.channels_last)
        run_all([functools.partial(self.rows, x[:, :, start:stop], weight, skip, out, start,
                                   stop) for start, stop in bands(height, band_rows(x, 3))])
        return out

    def face_weights(self, code, dtype):
        """(N, 3, C): each face's style folded into the weights."""
        with one_thread():
            style = F.linear(code, self.mod_weight, self.mod_bias) * self.input_gain
            return self.weight.to(dtype)[None] * style[:, None, :].to(dtype)

    def rows(self, x, weight, skip, out, start, stop):
        """Output rows start..stop from those rows of the map, `x` (`skip`: None, or the
        map below to upsample and add)."""
        rgb = self.rgb(x, weight)
        out[:, :, start:stop] = rgb if skip is None else rgb.add_(upsample_rows(skip, start, stop))

    def rgb(self, x, weight):
        """The 1x1 conv to three channels, bias included, of the rows of `x`, on one thread: a
        product with three outputs a pixel, whose sums torch's kernels split among threads on
        some CPUs (threads.THIN_CHANNELS), and cheap."""
        n, channels, height, width = x.shape
        # a matrix product per face; on channels-last input it reads each pixel's channels
        # in place (einsum would reorder the whole map first)
        pixels = x.permute(0, 2, 3, 1).reshape(n, height * width, channels)
        with one_thread():
            out = torch.bmm(pixels, weight.transpose(1, 2)).view(n, height, width, 3)
        return out.permute(0, 3, 1, 2).add_(self.bias[:, None, None].to(x.dtype))


def upsample_rows(rgb, start, stop):
    """Rows start..stop of the skip path's 2x upsampling with the [1, 3, 3, 1] filter, in
    polyphase form: along each axis an output is 3/4 of its nearest input and 1/4 of the next
    nearest, zeros beyond the edges (the zero padding of the straightforward zero-insert-and-
    filter formulation). Element-wise steps, so that the bits depend neither on the thread
    count (torch's bilinear interpolation, the same filter, rounds differently on one thread
    than on several) nor on the bands."""
    first = start // 2 - 1  # the input rows that output rows start..stop read, and one more
    rows = rows_of(rgb, first, (stop - 1) // 2 + 2)
    upsampled = _upsample_axis(_upsample_axis(rows, 2), 3)
    return upsampled[:, :, start - 2 * first:stop - 2 * first]


def _upsample_axis(x, axis):
    """2x along `axis` (2: rows, 3: columns) with the [1, 3, 3, 1] / 4 filter."""
    length = x.shape[axis]
    padded = F.pad(x, (1, 1, 0, 0) if axis == 3 else (0, 0, 1, 1))
    nearest = x * 3
    even = torch.add(nearest, padded.narrow(axis, 0, length)).mul_(0.25)
    odd = nearest.add_(padded.narrow(axis, 2, length)).mul_(0.25)
    return torch.stack((even, odd), dim=axis + 1).flatten(axis, axis + 1)
