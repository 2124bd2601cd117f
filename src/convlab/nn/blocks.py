"""Building blocks the spec builder and the zoo assemble: residual blocks, separable convs, shortcuts.

Module names follow torchvision's ResNet (``conv1``, ``bn1``, ``relu``, ``conv2``, ``bn2``,
``downsample``) so state dicts and summaries read like the literature.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
import torch.nn.functional as F
from torch import nn


class SpecNet(nn.Sequential):
    """A model built from a spec: a Sequential whose children carry readable names.

    ``spec`` holds the spec text it was built from, ``input_shape`` the (C, H, W) it was built for and
    ``notes`` what fitting its head to a class count changed beyond the width (a dropped sigmoid).
    """

    def __init__(self, modules: "OrderedDict[str, nn.Module]", spec: str = "", input_shape=None, notes=()):
        super().__init__(modules)
        self.spec = spec
        self.input_shape = tuple(input_shape) if input_shape else None
        self.notes = tuple(notes)

    def extra_repr(self) -> str:
        return f"spec={self.spec!r}, input_shape={self.input_shape}" if self.spec else ""


class ShortcutA(nn.Module):
    """Option A shortcut of He et al. 2016 (§4.2): subsample by the stride and zero-pad the new
    channels; no parameters. (N, C_in, H, W) -> (N, C_out, ceil(H/s), ceil(W/s))."""

    def __init__(self, in_channels: int, out_channels: int, stride: int):
        super().__init__()
        self.in_channels, self.out_channels, self.stride = in_channels, out_channels, stride

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.stride != 1:
            x = x[:, :, :: self.stride, :: self.stride]
        extra = self.out_channels - self.in_channels
        if extra:
            x = F.pad(x, (0, 0, 0, 0, extra // 2, extra - extra // 2))
        return x

    def extra_repr(self) -> str:
        return f"{self.in_channels}, {self.out_channels}, stride={self.stride}"


class BasicBlock(nn.Module):
    """conv3x3-bn-relu-conv3x3-bn, plus the shortcut, then relu (ResNet-18/34 and CIFAR ResNets)."""

    def __init__(self, conv1, bn1, relu, conv2, bn2, downsample=None):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.conv2, self.bn2 = conv1, bn1, relu, conv2, bn2
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class PlainBlock(nn.Module):
    """A BasicBlock without its shortcut: the plain nets of He et al.'s degradation experiment."""

    def __init__(self, conv1, bn1, relu, conv2, bn2):
        super().__init__()
        self.conv1, self.bn1, self.relu, self.conv2, self.bn2 = conv1, bn1, relu, conv2, bn2

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        return self.relu(self.bn2(self.conv2(out)))


class Bottleneck(nn.Module):
    """1x1 reduce, 3x3 (carrying the stride, as torchvision's ResNet v1.5), 1x1 expand to 4·mid."""

    def __init__(self, conv1, bn1, conv2, bn2, conv3, bn3, relu, downsample=None):
        super().__init__()
        self.conv1, self.bn1, self.conv2, self.bn2 = conv1, bn1, conv2, bn2
        self.conv3, self.bn3, self.relu = conv3, bn3, relu
        self.downsample = downsample

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        identity = x if self.downsample is None else self.downsample(x)
        return self.relu(out + identity)


class Residual(nn.Module):
    """``residual[body]``: body(x) + x, or body(x) + proj(x) with a 1x1 conv + bn projection."""

    def __init__(self, body: nn.Module, proj: nn.Module | None = None):
        super().__init__()
        self.body = body
        self.proj = proj

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.body(x) + (x if self.proj is None else self.proj(x))


class SeparableConv2d(nn.Module):
    """Keras' SeparableConv2D: a depthwise conv (one k×k filter per channel) then a 1x1 pointwise conv."""

    def __init__(self, depthwise: nn.Conv2d, pointwise: nn.Conv2d):
        super().__init__()
        self.depthwise, self.pointwise = depthwise, pointwise

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.pointwise(self.depthwise(x))


class GlobalAvgPool(nn.AdaptiveAvgPool2d):
    """Global average pooling: (N, C, H, W) -> (N, C, 1, 1)."""

    def __init__(self):
        super().__init__(1)


# The forwards as written above. The summary's tracer (convlab.analyze.trace) answers these blocks from
# shapes, calling their children in the order these forwards do, only while a class still runs this code.
WRITTEN_FORWARDS = {cls: cls.forward for cls in (BasicBlock, PlainBlock, Bottleneck, Residual, SeparableConv2d)}
