"""CIFAR-style VGG-11 with BatchNorm.

CIFAR repos drop VGG's three 4096-wide FC layers: after five 2x2 max-pools a 32 px image is
1x1x512, so a single ``Linear(512, C)`` suffices. Key names (``features.N``, ``classifier``)
match that layout so checkpoints load. Max-pools use ``ceil_mode`` (identical on even sizes)
so small or odd inputs (8 px, 28 px) never shrink to zero; an adaptive pool then fixes 1x1.
"""

from __future__ import annotations

from typing import Sequence, Union

import torch
from torch import nn

from .base import MODELS, Classifier, global_pool

CFG_VGG11 = (64, "M", 128, "M", 256, 256, "M", 512, 512, "M", 512, 512, "M")


def make_features(cfg: Sequence[Union[int, str]], in_channels: int) -> nn.Sequential:
    """conv3x3 -> BN -> ReLU per number, 2x2 max-pool (ceil mode) per "M"."""
    layers: list[nn.Module] = []
    c = in_channels
    for v in cfg:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2, ceil_mode=True))
        else:
            layers += [nn.Conv2d(c, int(v), 3, padding=1), nn.BatchNorm2d(int(v)),
                       nn.ReLU(inplace=True)]
            c = int(v)
    return nn.Sequential(*layers)


class VGG(Classifier):
    """VGG feature stack + one Linear classifier."""

    classifier_key = "classifier"
    first_conv_key = "features.0.weight"

    def __init__(self, cfg: Sequence[Union[int, str]], num_classes: int, in_channels: int = 3):
        super().__init__()
        self.features = make_features(cfg, in_channels)
        width = [v for v in cfg if v != "M"][-1]
        self.classifier = nn.Linear(width, num_classes)
        self._record(num_classes=num_classes, in_channels=in_channels, feature_dim=width)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(self.features(x))


@MODELS.register("vgg11_bn")
class VGG11BN(VGG):
    """VGG-11 with BatchNorm (about 9.2 M parameters)."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        super().__init__(CFG_VGG11, num_classes, in_channels)
