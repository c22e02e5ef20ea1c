"""facexlib's BiSeNet face parser (a ResNet-18 context path, 19 CelebAMask-HQ classes, in the
same order as ParseNet's), its main output computed with fewer operations.

Built once from facexlib's loaded BiSeNet (`FastBiSeNet(bisenet)`), which stays the oracle it
is tested against. The same main output, up to float rounding:
- batch norms folded into the convolutions before them (the attention branches' too), ReLUs
  in place, residual additions into the convolution's output, channels-last;
- the two auxiliary heads (trained as deep supervision, unused at inference) are left out;
- the image's ImageNet normalisation is done here, so that callers hand in [-1, 1] as they
  do for ParseNet.
At 512 it is about a seventeenth of ParseNet's arithmetic.
"""

import contextlib

import torch
from torch import nn
from torch.nn import functional as F

from .threads import THIN_CHANNELS, one_thread

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def folded(conv, norm=None):
    """(weight, bias) of a bias-free convolution with the batch norm after it folded in."""
    weight = conv.weight.detach().float()
    if norm is None:
        return weight, None
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    return weight * scale[:, None, None, None], norm.bias.detach() - norm.running_mean * scale


class Conv(nn.Module):
    """A convolution with its batch norm folded in, then optionally a residual added and a
    ReLU. Thin ones (an RGB input, the classes) run on one thread: torch's kernels split
    their sums among threads on some CPUs (threads.THIN_CHANNELS)."""

    def __init__(self, conv, norm=None, relu=True):
        super().__init__()
        weight, bias = folded(conv, norm)
        self.register_buffer("weight", weight.contiguous(memory_format=torch.channels_last))
        self.register_buffer("bias", bias)
        self.stride, self.padding, self.relu = conv.stride, conv.padding, relu
        self.thin = min(weight.shape[:2]) < THIN_CHANNELS

    def forward(self, x, residual=None):
        with one_thread() if self.thin else contextlib.nullcontext():
            y = F.conv2d(x, self.weight, self.bias, self.stride, self.padding)
        if residual is not None:
            y += residual
        return F.relu_(y) if self.relu else y


def conv_bn_relu(unit):
    """facexlib's ConvBNReLU."""
    return Conv(unit.conv, unit.bn)


class BasicBlock(nn.Module):
    """ResNet's: relu(shortcut + bn(conv(relu(bn(conv(x))))))."""

    def __init__(self, block):
        super().__init__()
        self.conv1 = Conv(block.conv1, block.bn1)
        self.conv2 = Conv(block.conv2, block.bn2)
        self.shortcut = None if block.downsample is None else \
            Conv(block.downsample[0], block.downsample[1], relu=False)

    def forward(self, x):
        shortcut = x if self.shortcut is None else self.shortcut(x)
        return self.conv2(self.conv1(x), residual=shortcut)


class Attention(nn.Module):
    """A channel attention: the map scaled by sigmoid(conv(global average)), optionally added
    to itself (the fusion module's `feat * atten + feat`)."""

    def __init__(self, convs, keep_input=False):
        super().__init__()
        self.convs = nn.ModuleList(convs)
        self.keep_input = keep_input

    def forward(self, x):
        with one_thread():  # a few values a channel
            weights = x.mean(dim=(2, 3), keepdim=True)
            for conv in self.convs:
                weights = conv(weights)
            weights = torch.sigmoid(weights)
        return x * (weights + 1) if self.keep_input else x * weights


def refinement(module):
    """facexlib's AttentionRefinementModule: a conv, then its attention."""
    return nn.Sequential(conv_bn_relu(module.conv), Attention(
        [Conv(module.conv_atten, module.bn_atten, relu=False)]))


class FastBiSeNet(nn.Module):
    """Drop-in for facexlib's BiSeNet at inference, main logits only: (N, 3, S, S) in [-1, 1]
    to (N, classes, S, S)."""

    @torch.no_grad()
    def __init__(self, bisenet):
        super().__init__()
        resnet, context = bisenet.cp.resnet, bisenet.cp
        self.stem = Conv(resnet.conv1, resnet.bn1)
        self.stages = nn.ModuleList(nn.Sequential(*(BasicBlock(block) for block in stage))
                                    for stage in (resnet.layer1, resnet.layer2, resnet.layer3,
                                                  resnet.layer4))
        self.global_context = conv_bn_relu(context.conv_avg)
        self.refine32, self.refine16 = refinement(context.arm32), refinement(context.arm16)
        self.head32 = conv_bn_relu(context.conv_head32)
        self.head16 = conv_bn_relu(context.conv_head16)
        fusion = bisenet.ffm
        self.fuse = conv_bn_relu(fusion.convblk)
        self.fuse_attention = Attention([Conv(fusion.conv1), Conv(fusion.conv2, relu=False)],
                                        keep_input=True)
        self.features = conv_bn_relu(bisenet.conv_out.conv)
        self.logits = Conv(bisenet.conv_out.conv_out, relu=False)
        shift = torch.tensor(IMAGENET_MEAN) * 2 - 1  # [-1, 1] -> ImageNet's normalisation
        self.register_buffer("shift", shift[:, None, None])
        self.register_buffer("scale", (0.5 / torch.tensor(IMAGENET_STD))[:, None, None])

    def forward(self, x):
        size = x.shape[2:]
        x = ((x - self.shift.to(x.dtype)) * self.scale.to(x.dtype)).contiguous(
            memory_format=torch.channels_last)
        x = F.max_pool2d(self.stem(x), kernel_size=3, stride=2, padding=1)
        eighth = self.stages[1](self.stages[0](x))
        sixteenth = self.stages[2](eighth)
        thirty_second = self.stages[3](sixteenth)
        with one_thread():
            context = self.global_context(thirty_second.mean(dim=(2, 3), keepdim=True))
        up = self.head32(_nearest(self.refine32(thirty_second) + context, sixteenth))
        up = self.head16(_nearest(self.refine16(sixteenth) + up, eighth))
        fused = self.fuse_attention(self.fuse(torch.cat([eighth, up], dim=1)))
        with torch.autocast(x.device.type, enabled=False):  # the classes come from the logits
            logits = self.logits(self.features(fused).float())
            return F.interpolate(logits, size, mode="bilinear", align_corners=True)


def _nearest(x, like):
    return F.interpolate(x, like.shape[2:], mode="nearest")
