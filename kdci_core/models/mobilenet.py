"""MobileNetV2 for small images, built on torchvision's implementation.

torchvision's network is made for 224 px: its stem and second stage both stride 2, which would
reduce a 32 px image to 1x1 by the middle of the network. As in the CIFAR repos we make the
stem stride 1 (and accept any ``in_channels``) and the 24-channel stage stride 1, so the total
downsampling is 8 (32 px -> 4x4). Parameter names stay torchvision's (``features.N...``,
``classifier.1``) so weights saved from torchvision-based code load.
"""

from __future__ import annotations

import torch
from torch import nn
from torchvision.models import MobileNetV2 as _TorchvisionMobileNetV2
from torchvision.ops.misc import Conv2dNormActivation

from .base import MODELS, Classifier, global_pool

# (expansion t, channels c, repeats n, first stride s); torchvision's default has s=2 in row 2.
CIFAR_SETTING = [
    [1, 16, 1, 1],
    [6, 24, 2, 1],
    [6, 32, 3, 2],
    [6, 64, 4, 2],
    [6, 96, 3, 1],
    [6, 160, 3, 2],
    [6, 320, 1, 1],
]


@MODELS.register("mobilenet_v2")
class MobileNetV2(Classifier, _TorchvisionMobileNetV2):
    """torchvision MobileNetV2 with a stride-1 stem taking ``in_channels``; feature_dim 1280."""

    classifier_key = "classifier.1"
    first_conv_key = "features.0.0.weight"

    def __init__(self, num_classes: int, in_channels: int = 3, width_mult: float = 1.0,
                 dropout: float = 0.2):
        # Classifier defines no __init__, so this runs torchvision's constructor.
        super().__init__(num_classes=num_classes, width_mult=width_mult,
                         inverted_residual_setting=CIFAR_SETTING, dropout=dropout)
        stem_out = self.features[0][0].out_channels
        stem = Conv2dNormActivation(in_channels, stem_out, stride=1,
                                    norm_layer=nn.BatchNorm2d, activation_layer=nn.ReLU6)
        nn.init.kaiming_normal_(stem[0].weight, mode="fan_out")  # as torchvision does
        self.features[0] = stem
        self._record(num_classes=num_classes, in_channels=in_channels,
                     feature_dim=self.last_channel)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        return global_pool(self.features(x))

    def classify(self, features: torch.Tensor) -> torch.Tensor:
        # Dropout + Linear; the returned features are the pre-dropout vector (same in eval).
        return self.classifier(features)
