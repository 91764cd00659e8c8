"""CIFAR-style ResNet-18/34.

The CIFAR stem (3x3 stride-1 conv, no max-pool) keeps resolution for 32 px images, which is
what DFKD papers' teachers use; the ImageNet stem would reduce a 32 px image to 1x1 too early.
Key names (conv1, bn1, layer1..layer4 with shortcut.0/1, linear) follow the widespread
kuangliu/pytorch-cifar layout so users' checkpoints load unchanged. Adaptive average pooling
before ``linear`` makes any input size from 8 px work.
"""

from __future__ import annotations

from typing import Sequence

import torch
from torch import nn
from torch.nn import functional as F

from .base import MODELS, Classifier, global_pool


class BasicBlock(nn.Module):
    """Two 3x3 convs with a residual; a 1x1 projection when the shape changes."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride=stride, bias=False),
                nn.BatchNorm2d(planes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.shortcut(x))


class ResNet(Classifier):
    """ResNet with BasicBlocks; ``blocks`` gives the number of blocks per stage."""

    classifier_key = "linear"
    first_conv_key = "conv1.weight"

    def __init__(self, blocks: Sequence[int], num_classes: int, in_channels: int = 3):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, 64, 3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(64)
        planes_in = 64
        for i, (planes, stride, n) in enumerate(zip((64, 128, 256, 512), (1, 2, 2, 2), blocks)):
            layers = []
            for s in [stride] + [1] * (n - 1):
                layers.append(BasicBlock(planes_in, planes, s))
                planes_in = planes
            setattr(self, f"layer{i + 1}", nn.Sequential(*layers))
        self.linear = nn.Linear(512, num_classes)
        self._record(num_classes=num_classes, in_channels=in_channels, feature_dim=512)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer4(self.layer3(self.layer2(self.layer1(out))))
        return global_pool(out)


@MODELS.register("resnet18")
class ResNet18(ResNet):
    """[2, 2, 2, 2] BasicBlocks (about 11.2 M parameters)."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__((2, 2, 2, 2), num_classes, in_channels)


@MODELS.register("resnet34")
class ResNet34(ResNet):
    """[3, 4, 6, 3] BasicBlocks (about 21.3 M parameters): the usual DFKD teacher."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__((3, 4, 6, 3), num_classes, in_channels)
