"""DenseNet-121 (Huang et al. 2017), written as torchvision writes it: a third-party-style model for
``convlab summary`` and ``convlab draw`` (``convlab draw examples.densenet:densenet121 --depth 1``).

Each dense layer reads the concatenation of every earlier feature map in its block; the drawing
shows those concatenations as they are traced, one edge per branch.
"""

from collections import OrderedDict

import torch
import torch.nn as nn
import torch.nn.functional as F


class DenseLayer(nn.Module):
    def __init__(self, in_channels: int, growth: int, bn_size: int = 4):
        super().__init__()
        self.norm1 = nn.BatchNorm2d(in_channels)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv1 = nn.Conv2d(in_channels, bn_size * growth, 1, bias=False)
        self.norm2 = nn.BatchNorm2d(bn_size * growth)
        self.relu2 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(bn_size * growth, growth, 3, padding=1, bias=False)

    def forward(self, features):
        x = torch.cat(features, 1)
        return self.conv2(self.relu2(self.norm2(self.conv1(self.relu1(self.norm1(x))))))


class DenseBlock(nn.ModuleDict):
    def __init__(self, n: int, in_channels: int, growth: int):
        super().__init__({f"denselayer{i + 1}": DenseLayer(in_channels + i * growth, growth) for i in range(n)})

    def forward(self, x):
        features = [x]
        for layer in self.values():
            features.append(layer(features))
        return torch.cat(features, 1)


class Transition(nn.Sequential):
    def __init__(self, in_channels: int, out_channels: int):
        super().__init__(OrderedDict(norm=nn.BatchNorm2d(in_channels), relu=nn.ReLU(inplace=True),
                                     conv=nn.Conv2d(in_channels, out_channels, 1, bias=False),
                                     pool=nn.AvgPool2d(2, 2)))


class DenseNet(nn.Module):
    def __init__(self, blocks=(6, 12, 24, 16), growth: int = 32, stem: int = 64, num_classes: int = 1000):
        super().__init__()
        layers = OrderedDict(conv0=nn.Conv2d(3, stem, 7, 2, 3, bias=False), norm0=nn.BatchNorm2d(stem),
                             relu0=nn.ReLU(inplace=True), pool0=nn.MaxPool2d(3, 2, 1))
        c = stem
        for i, n in enumerate(blocks):
            layers[f"denseblock{i + 1}"] = DenseBlock(n, c, growth)
            c += n * growth
            if i < len(blocks) - 1:
                layers[f"transition{i + 1}"] = Transition(c, c // 2)
                c //= 2
        layers["norm5"] = nn.BatchNorm2d(c)
        self.features = nn.Sequential(layers)
        self.classifier = nn.Linear(c, num_classes)
        self.input_shape = (3, 224, 224)

    def forward(self, x):
        x = F.relu(self.features(x))
        return self.classifier(torch.flatten(F.adaptive_avg_pool2d(x, 1), 1))


def densenet121(num_classes: int = 1000) -> DenseNet:
    return DenseNet((6, 12, 24, 16), 32, 64, num_classes)
