"""A corpus of CNN definitions written the way third-party model collections write them, for the
summary's exactness tests (tests/test_analyze_corpus.py) and its speed bench (bench/summary_speed.py).

Every model here is written for this corpus in the style of a well-known code base: Inception's
multi-branch blocks, DenseNet's dense connections, squeeze-excitation, a detector's dict of outputs,
TensorFlow-style "same" padding with ``F.pad``, weight standardisation, a non-local attention block,
MobileNet's depthwise separable blocks, ShuffleNet's channel shuffle, ConvNeXt's channels-last
LayerNorm, a U-Net decoder. :func:`third_party` adds models from packages that may be installed
(pytorchcv, efficientnet_pytorch); they are skipped where the package is missing.

Each entry: (name, factory, input shape with the batch).
"""

from __future__ import annotations

import math
from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


def conv_bn(cin, cout, k=3, s=1, p=None, groups=1, act=nn.ReLU):
    p = k // 2 if p is None else p
    layers = [nn.Conv2d(cin, cout, k, s, p, groups=groups, bias=False), nn.BatchNorm2d(cout)]
    return nn.Sequential(*layers, act()) if act else nn.Sequential(*layers)


# -- Inception: parallel branches joined along the channels ------------------------------------

class InceptionA(nn.Module):
    def __init__(self, cin, pool_features):
        super().__init__()
        self.branch1x1 = conv_bn(cin, 16, 1)
        self.branch5x5_1 = conv_bn(cin, 12, 1)
        self.branch5x5_2 = conv_bn(12, 16, 5, p=2)
        self.branch3x3dbl_1 = conv_bn(cin, 16, 1)
        self.branch3x3dbl_2 = conv_bn(16, 24, 3)
        self.branch3x3dbl_3 = conv_bn(24, 24, 3)
        self.branch_pool = conv_bn(cin, pool_features, 1)

    def forward(self, x):
        b1 = self.branch1x1(x)
        b5 = self.branch5x5_2(self.branch5x5_1(x))
        b3 = self.branch3x3dbl_3(self.branch3x3dbl_2(self.branch3x3dbl_1(x)))
        bp = self.branch_pool(F.avg_pool2d(x, kernel_size=3, stride=1, padding=1))
        return torch.cat([b1, b5, b3, bp], 1)


class TinyInception(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 32, 3, 2, 0), conv_bn(32, 32, 3), nn.MaxPool2d(3, 2))
        self.mixed_5b = InceptionA(32, 8)
        self.mixed_5c = InceptionA(64, 16)
        self.fc = nn.Linear(72, num_classes)

    def forward(self, x):
        x = self.mixed_5c(self.mixed_5b(self.stem(x)))
        x = F.adaptive_avg_pool2d(x, (1, 1))
        x = F.dropout(x, training=self.training)
        return self.fc(torch.flatten(x, 1))


# -- DenseNet: every layer reads the concatenation of all before it ----------------------------

class DenseLayer(nn.Module):
    def __init__(self, cin, growth, bn_size=4):
        super().__init__()
        self.norm1, self.relu1 = nn.BatchNorm2d(cin), nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(cin, bn_size * growth, 1, bias=False)
        self.norm2, self.relu2 = nn.BatchNorm2d(bn_size * growth), nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, inputs):
        x = torch.cat(inputs, 1) if isinstance(inputs, list) else inputs
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, n, cin, growth):
        super().__init__({f"denselayer{i + 1}": DenseLayer(cin + i * growth, growth) for i in range(n)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class TinyDenseNet(nn.Module):
    def __init__(self, growth=8, blocks=(3, 3), num_classes=10):
        super().__init__()
        c = 2 * growth
        feats = [("conv0", nn.Conv2d(3, c, 3, padding=1, bias=False))]
        for i, n in enumerate(blocks):
            feats.append((f"denseblock{i + 1}", DenseBlock(n, c, growth)))
            c += n * growth
            if i != len(blocks) - 1:
                feats.append((f"transition{i + 1}", nn.Sequential(
                    nn.BatchNorm2d(c), nn.ReLU(inplace=True), nn.Conv2d(c, c // 2, 1, bias=False), nn.AvgPool2d(2))))
                c //= 2
        feats.append(("norm5", nn.BatchNorm2d(c)))
        self.features = nn.Sequential(OrderedDict(feats))
        self.classifier = nn.Linear(c, num_classes)

    def forward(self, x):
        out = F.relu(self.features(x), inplace=True)
        out = F.adaptive_avg_pool2d(out, (1, 1))
        return self.classifier(torch.flatten(out, 1))


# -- squeeze-excitation (two styles: fc on a flattened pool, 1x1 convs on x.mean) --------------

class SEFc(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.avg_pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Sequential(nn.Linear(c, c // r, bias=False), nn.ReLU(inplace=True),
                                nn.Linear(c // r, c, bias=False), nn.Sigmoid())

    def forward(self, x):
        b, c, _, _ = x.size()
        y = self.avg_pool(x).view(b, c)
        y = self.fc(y).view(b, c, 1, 1)
        return x * y.expand_as(x)


class SEConv(nn.Module):
    def __init__(self, c, r=4):
        super().__init__()
        self.fc1, self.fc2 = nn.Conv2d(c, c // r, 1), nn.Conv2d(c // r, c, 1)

    def forward(self, x):
        s = x.mean((2, 3), keepdim=True)
        return x * self.fc2(F.relu(self.fc1(s))).sigmoid()


class SEBasicBlock(nn.Module):
    def __init__(self, cin, cout, stride=1, se=SEFc):
        super().__init__()
        self.conv1 = nn.Conv2d(cin, cout, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(cout)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(cout)
        self.se = se(cout)
        self.downsample = None if stride == 1 and cin == cout else nn.Sequential(
            nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        identity = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.se(self.bn2(self.conv2(out)))
        out += identity
        return self.relu(out)


class SEResNet(nn.Module):
    def __init__(self, widths=(16, 32, 64), se=SEFc, num_classes=10):
        super().__init__()
        self.conv1 = conv_bn(3, widths[0])
        layers, c = [], widths[0]
        for i, w in enumerate(widths):
            layers += [SEBasicBlock(c, w, 1 if i == 0 else 2, se), SEBasicBlock(w, w, 1, se)]
            c = w
        self.layers = nn.Sequential(*layers)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.layers(self.conv1(x))
        return self.fc(F.adaptive_avg_pool2d(x, 1).flatten(1))


# -- a detector-style model: a dict of outputs --------------------------------------------------

class DictHeads(nn.Module):
    def __init__(self, num_classes=5):
        super().__init__()
        self.backbone = nn.Sequential(conv_bn(3, 16, 3, 2), conv_bn(16, 32, 3, 2), conv_bn(32, 32, 3))
        self.cls = nn.Conv2d(32, num_classes, 1)
        self.box = nn.Conv2d(32, 4, 3, padding=1)

    def forward(self, x):
        f = self.backbone(x)
        return {"logits": self.cls(f), "boxes": self.box(f).permute(0, 2, 3, 1).reshape(x.shape[0], -1, 4),
                "features": f}


# -- TensorFlow "same" padding with F.pad, weight standardisation ------------------------------

class Conv2dSame(nn.Conv2d):
    """TensorFlow's SAME padding, computed per input (the EfficientNet/timm port)."""

    def forward(self, x):
        ih, iw = x.size()[-2:]
        kh, kw = self.weight.size()[-2:]
        sh, sw = self.stride
        oh, ow = math.ceil(ih / sh), math.ceil(iw / sw)
        pad_h = max((oh - 1) * sh + (kh - 1) * self.dilation[0] + 1 - ih, 0)
        pad_w = max((ow - 1) * sw + (kw - 1) * self.dilation[1] + 1 - iw, 0)
        if pad_h > 0 or pad_w > 0:
            x = F.pad(x, [pad_w // 2, pad_w - pad_w // 2, pad_h // 2, pad_h - pad_h // 2])
        return F.conv2d(x, self.weight, self.bias, self.stride, 0, self.dilation, self.groups)


class StdConv2d(nn.Conv2d):
    """Weight standardisation (BiT's ResNetV2): the weight normalised per output channel each call."""

    def forward(self, x):
        w = self.weight
        v, m = torch.var_mean(w, dim=[1, 2, 3], keepdim=True, unbiased=False)
        w = (w - m) / torch.sqrt(v + 1e-10)
        return F.conv2d(x, w, self.bias, self.stride, self.padding, self.dilation, self.groups)


class MaskedConv2d(nn.Conv2d):
    """A conv whose weight is masked each call, F.conv2d called with keywords only (pytorchcv's XConv2d)."""

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.mask = nn.Parameter(torch.ones_like(self.weight), requires_grad=False)

    def forward(self, input):
        return F.conv2d(input=input, weight=self.weight.mul(self.mask), bias=self.bias, stride=self.stride,
                        padding=self.padding, dilation=self.dilation, groups=self.groups)


class SamePadStdNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = Conv2dSame(3, 16, 3, stride=2)
        self.gn1 = nn.GroupNorm(4, 16)
        self.conv2 = StdConv2d(16, 32, 3, stride=2, padding=1, bias=False)
        self.gn2 = nn.GroupNorm(8, 32)
        self.conv3 = Conv2dSame(32, 32, 5, stride=2, groups=32)
        self.masked = MaskedConv2d(32, 32, 3, padding=1)
        self.head = nn.Linear(32, num_classes)

    def forward(self, x):
        x = F.relu(self.gn1(self.stem(x)))
        x = F.relu(self.gn2(self.conv2(x)))
        x = self.masked(self.conv3(x))
        return self.head(x.mean([-2, -1]))


# -- attention: a non-local block (bmm, not counted) and multi-head attention over the map ------

class NonLocal(nn.Module):
    def __init__(self, c):
        super().__init__()
        self.theta, self.phi, self.g = nn.Conv2d(c, c // 2, 1), nn.Conv2d(c, c // 2, 1), nn.Conv2d(c, c // 2, 1)
        self.out = nn.Conv2d(c // 2, c, 1)

    def forward(self, x):
        n, c, h, w = x.shape
        t = self.theta(x).view(n, c // 2, -1).permute(0, 2, 1)
        p = self.phi(x).view(n, c // 2, -1)
        a = torch.bmm(t, p).softmax(dim=-1)
        g = self.g(x).view(n, c // 2, -1).permute(0, 2, 1)
        y = torch.matmul(a, g).permute(0, 2, 1).contiguous().view(n, c // 2, h, w)
        return x + self.out(y)


class AttnNet(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.stem = nn.Sequential(conv_bn(3, 16, 3, 2), conv_bn(16, 32, 3, 2))
        self.nonlocal_block = NonLocal(32)
        self.mha = nn.MultiheadAttention(32, 4, batch_first=True)
        self.norm = nn.LayerNorm(32)
        self.fc = nn.Linear(32, num_classes)

    def forward(self, x):
        x = self.nonlocal_block(self.stem(x))
        tokens = x.flatten(2).transpose(1, 2)
        tokens = tokens + self.mha(tokens, tokens, tokens, need_weights=False)[0]
        return self.fc(self.norm(tokens).mean(1))


# -- MobileNetV2 and ShuffleNetV2 -------------------------------------------------------------

class InvertedResidual(nn.Module):
    def __init__(self, cin, cout, stride, expand):
        super().__init__()
        hidden = cin * expand
        self.use_res = stride == 1 and cin == cout
        layers = [conv_bn(cin, hidden, 1, act=nn.ReLU6)] if expand != 1 else []
        layers += [conv_bn(hidden, hidden, 3, stride, groups=hidden, act=nn.ReLU6), conv_bn(hidden, cout, 1, act=None)]
        self.conv = nn.Sequential(*layers)

    def forward(self, x):
        return x + self.conv(x) if self.use_res else self.conv(x)


class TinyMobileNetV2(nn.Module):
    def __init__(self, num_classes=10, setting=((1, 16, 1, 1), (6, 24, 2, 2), (6, 32, 2, 2), (6, 64, 1, 2))):
        super().__init__()
        layers, c = [conv_bn(3, 32, 3, 2, act=nn.ReLU6)], 32
        for t, ch, n, s in setting:
            for i in range(n):
                layers.append(InvertedResidual(c, ch, s if i == 0 else 1, t))
                c = ch
        layers.append(conv_bn(c, 128, 1, act=nn.ReLU6))
        self.features = nn.Sequential(*layers)
        self.classifier = nn.Sequential(nn.Dropout(0.2), nn.Linear(128, num_classes))

    def forward(self, x):
        x = self.features(x)
        x = nn.functional.adaptive_avg_pool2d(x, (1, 1))
        return self.classifier(torch.flatten(x, 1))


def channel_shuffle(x, groups):
    n, c, h, w = x.size()
    x = x.view(n, groups, c // groups, h, w)
    x = torch.transpose(x, 1, 2).contiguous()
    return x.view(n, -1, h, w)


class ShuffleUnit(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.stride = stride
        branch = cout // 2
        if stride > 1:
            self.branch1 = nn.Sequential(conv_bn(cin, cin, 3, stride, groups=cin, act=None), conv_bn(cin, branch, 1))
        else:
            self.branch1 = nn.Sequential()
        self.branch2 = nn.Sequential(conv_bn(cin if stride > 1 else branch, branch, 1),
                                     conv_bn(branch, branch, 3, stride, groups=branch, act=None),
                                     conv_bn(branch, branch, 1))

    def forward(self, x):
        if self.stride == 1:
            x1, x2 = x.chunk(2, dim=1)
            out = torch.cat((x1, self.branch2(x2)), dim=1)
        else:
            out = torch.cat((self.branch1(x), self.branch2(x)), dim=1)
        return channel_shuffle(out, 2)


class TinyShuffleNetV2(nn.Module):
    def __init__(self, num_classes=10, stages=(2, 2), widths=(24, 48, 96)):
        super().__init__()
        self.conv1 = conv_bn(3, widths[0], 3, 2)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        c, stage_list = widths[0], []
        for n, w in zip(stages, widths[1:]):
            stage_list.append(nn.Sequential(ShuffleUnit(c, w, 2), *[ShuffleUnit(w, w, 1) for _ in range(n - 1)]))
            c = w
        self.stages = nn.Sequential(*stage_list)
        self.fc = nn.Linear(c, num_classes)

    def forward(self, x):
        x = self.stages(self.maxpool(self.conv1(x)))
        return self.fc(x.mean([2, 3]))


# -- ConvNeXt: depthwise 7x7, channels-last LayerNorm and MLP, layer scale --------------------

class ConvNeXtBlock(nn.Module):
    def __init__(self, dim):
        super().__init__()
        self.dwconv = nn.Conv2d(dim, dim, 7, padding=3, groups=dim)
        self.norm = nn.LayerNorm(dim, eps=1e-6)
        self.pwconv1, self.act, self.pwconv2 = nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim)
        self.gamma = nn.Parameter(1e-6 * torch.ones(dim))

    def forward(self, x):
        shortcut = x
        x = self.dwconv(x).permute(0, 2, 3, 1)
        x = self.pwconv2(self.act(self.pwconv1(self.norm(x))))
        return shortcut + (self.gamma * x).permute(0, 3, 1, 2)


class TinyConvNeXt(nn.Module):
    def __init__(self, num_classes=10, dims=(16, 32)):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, dims[0], 4, stride=4), nn.GroupNorm(1, dims[0]))
        self.stage1 = nn.Sequential(ConvNeXtBlock(dims[0]), ConvNeXtBlock(dims[0]))
        self.down = nn.Conv2d(dims[0], dims[1], 2, stride=2)
        self.stage2 = nn.Sequential(ConvNeXtBlock(dims[1]))
        self.head = nn.Linear(dims[1], num_classes)

    def forward(self, x):
        x = self.stage2(self.down(self.stage1(self.stem(x))))
        return self.head(x.mean([-2, -1]))


# -- U-Net: a transposed-conv decoder with skip connections, interpolation, frozen encoder -------

class TinyUNet(nn.Module):
    def __init__(self, classes=3):
        super().__init__()
        self.enc1, self.enc2 = conv_bn(3, 8), conv_bn(8, 16)
        self.pool = nn.MaxPool2d(2)
        self.mid = conv_bn(16, 32)
        self.up2, self.dec2 = nn.ConvTranspose2d(32, 16, 2, stride=2), conv_bn(32, 16)
        self.dec1 = conv_bn(24, 8)
        self.out = nn.Conv2d(8, classes, 1)
        for p in self.enc1.parameters():  # a frozen encoder layer: non-trainable
            p.requires_grad_(False)

    def forward(self, x):
        e1 = self.enc1(x)
        e2 = self.enc2(self.pool(e1))
        m = self.mid(self.pool(e2))
        d2 = self.dec2(torch.cat([self.up2(m), e2], dim=1))
        d1 = F.interpolate(d2, scale_factor=2, mode="bilinear", align_corners=False)
        return self.out(self.dec1(torch.cat([d1, e1], dim=1)))


# -- a shared layer used twice and a network-in-network head ------------------------------------

class SharedAndNiN(nn.Module):
    def __init__(self, num_classes=10):
        super().__init__()
        self.conv = conv_bn(3, 16)
        self.shared = nn.Conv2d(16, 16, 3, padding=1)  # applied twice: its parameters count once
        self.nin = nn.Sequential(nn.Conv2d(16, 32, 1), nn.ReLU(), nn.Conv2d(32, num_classes, 1), nn.ReLU())
        self.gap = nn.AdaptiveAvgPool2d((1, 1))

    def forward(self, x):
        x = self.conv(x)
        x = F.relu(self.shared(F.relu(self.shared(x))))
        x = F.max_pool2d(x, 2, 2, ceil_mode=True)
        return torch.squeeze(self.gap(self.nin(x)), dim=(2, 3))


CORPUS = [
    ("inception", TinyInception, (1, 3, 48, 48)),
    ("densenet", TinyDenseNet, (1, 3, 32, 32)),
    ("se-resnet-fc", SEResNet, (1, 3, 32, 32)),
    ("se-resnet-conv", lambda: SEResNet(se=SEConv), (1, 3, 32, 32)),
    ("dict-heads", DictHeads, (1, 3, 32, 32)),
    ("same-pad-ws", SamePadStdNet, (1, 3, 33, 31)),
    ("non-local+mha", AttnNet, (1, 3, 32, 32)),
    ("mobilenetv2", TinyMobileNetV2, (1, 3, 32, 32)),
    ("shufflenetv2", TinyShuffleNetV2, (1, 3, 32, 32)),
    ("convnext", TinyConvNeXt, (1, 3, 32, 32)),
    ("unet", TinyUNet, (1, 3, 32, 32)),
    ("shared+nin", SharedAndNiN, (1, 3, 31, 31)),
]


# -- third-party model code, where the package is installed --------------------------------------

PYTORCHCV_CIFAR = [
    ("resnet_cifar", "resnet20_cifar10"), ("preresnet_cifar", "preresnet20_cifar10"),
    ("seresnet_cifar", "seresnet20_cifar10"), ("sepreresnet_cifar", "sepreresnet20_cifar10"),
    ("densenet_cifar", "densenet40_k12_cifar10"), ("resnext_cifar", "resnext29_16x64d_cifar10"),
    ("pyramidnet_cifar", "pyramidnet110_a48_cifar10"), ("wrn_cifar", "wrn16_10_cifar10"),
    ("nin_cifar", "nin_cifar10"), ("ror_cifar", "ror3_56_cifar10"), ("rir_cifar", "rir_cifar10"),
    ("diaresnet_cifar", "diaresnet20_cifar10"), ("xdensenet_cifar", "xdensenet40_2_k24_bc_cifar10"),
    ("shakeshakeresnet_cifar", "shakeshakeresnet20_2x16d_cifar10"), ("resnet_cifar", "resnet110_cifar10"),
]
PYTORCHCV_IMAGENET = [
    ("mobilenetv2", "mobilenetv2_w1"), ("shufflenetv2", "shufflenetv2_w1"), ("squeezenet", "squeezenet_v1_1"),
    ("mnasnet", "mnasnet_b1"), ("ghostnet", "ghostnet"), ("efficientnet", "efficientnet_b0"),
    ("resnet", "resnet18"), ("densenet", "densenet121"), ("inceptionv3", "inceptionv3"),
]


def third_party(imagenet: bool = True):
    """(name, factory, input shape) for the installed third-party collections (none where none is)."""
    import importlib

    out = []
    try:
        importlib.import_module("pytorchcv.models.resnet_cifar")
    except ImportError:
        pass
    else:
        def cv(module, name):
            return lambda: getattr(importlib.import_module(f"pytorchcv.models.{module}"), name)()
        out += [(f"pytorchcv:{n}", cv(mod, n), (1, 3, 32, 32)) for mod, n in PYTORCHCV_CIFAR]
        if imagenet:
            out += [(f"pytorchcv:{n}", cv(mod, n), (1, 3, 299 if n == "inceptionv3" else 224, 224 if n != "inceptionv3"
                                                    else 299)) for mod, n in PYTORCHCV_IMAGENET]
    try:
        from efficientnet_pytorch import EfficientNet
    except ImportError:
        pass
    else:
        if imagenet:
            out.append(("efficientnet_pytorch:b0", lambda: EfficientNet.from_name("efficientnet-b0"),
                        (1, 3, 224, 224)))
    return out
