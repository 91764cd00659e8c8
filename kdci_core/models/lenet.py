"""LeNet-5 (modern variant) for small grey or colour images.

Choice documented here: unlike the 1998 original (tanh, no normalisation) each conv is followed
by BatchNorm, because DeepInversion-style methods match the teacher's BN statistics and need BN
layers to exist. Layout: conv5x5 (pad 2) -> BN -> ReLU -> maxpool, twice (6 and 16 channels;
``lenet5_half``: 3 and 8), then an adaptive average pool to a fixed 5x5 grid (so the first FC
has the classic 16*5*5 = 400 inputs whatever the image size), then FC 120 -> 84 -> C
(half: 60 -> 42 -> C). Max-pools use ``ceil_mode`` so an 8 px input never shrinks to zero.
Key names follow the common CIFAR repos: conv1, bn1, conv2, bn2, fc1, fc2, fc3.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import MODELS, Classifier

GRID = 5  # fixed spatial grid before the FC layers


class LeNet5(Classifier):
    """LeNet-5 with BatchNorm; c1/c2 conv channels, h1/h2 hidden FC widths (h2 = feature_dim)."""

    classifier_key = "fc3"
    first_conv_key = "conv1.weight"

    def __init__(self, num_classes: int, in_channels: int = 3, *, c1: int = 6, c2: int = 16,
                 h1: int = 120, h2: int = 84):
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, c1, 5, padding=2)
        self.bn1 = nn.BatchNorm2d(c1)
        self.conv2 = nn.Conv2d(c1, c2, 5, padding=2)
        self.bn2 = nn.BatchNorm2d(c2)
        self.pool = nn.AdaptiveAvgPool2d(GRID)
        self.fc1 = nn.Linear(c2 * GRID * GRID, h1)
        self.fc2 = nn.Linear(h1, h2)
        self.fc3 = nn.Linear(h2, num_classes)
        self._record(num_classes=num_classes, in_channels=in_channels, feature_dim=h2)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.bn1(self.conv1(x))), 2, ceil_mode=True)
        x = F.max_pool2d(F.relu(self.bn2(self.conv2(x))), 2, ceil_mode=True)
        x = torch.flatten(self.pool(x), 1)
        return F.relu(self.fc2(F.relu(self.fc1(x))))


@MODELS.register("lenet5")
class LeNet5Full(LeNet5):
    """6/16 conv channels, FC 120 -> 84 -> C."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__(num_classes, in_channels)


@MODELS.register("lenet5_half")
class LeNet5Half(LeNet5):
    """Half width (3/8 channels, FC 60 -> 42 -> C): the usual DAFL/MNIST student."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__(num_classes, in_channels, c1=3, c2=8, h1=60, h2=42)
