"""Wide ResNets WRN-depth-widen (Zagoruyko & Komodakis), the standard DFKD teachers/students.

Pre-activation blocks (BN -> ReLU -> conv). Key names follow the layout used by the
DAFL/DeepInversion/CMI code bases (conv1, block1..block3 with ``layer.N.{bn1,conv1,bn2,conv2,
convShortcut}``, bn1, fc) so their checkpoints load. Depth must satisfy (depth - 4) % 6 == 0.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from .base import MODELS, Classifier, global_pool


class WideBasic(nn.Module):
    """Pre-activation residual block; a 1x1 projection when the width or stride changes."""

    def __init__(self, in_planes: int, out_planes: int, stride: int, drop_rate: float = 0.0):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, out_planes, 3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_planes)
        self.conv2 = nn.Conv2d(out_planes, out_planes, 3, stride=1, padding=1, bias=False)
        self.drop_rate = drop_rate
        self.equal_in_out = in_planes == out_planes and stride == 1
        self.convShortcut = None if self.equal_in_out else nn.Conv2d(
            in_planes, out_planes, 1, stride=stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pre = F.relu(self.bn1(x))
        # The projection sees the pre-activated input, the identity the raw one.
        shortcut = x if self.convShortcut is None else self.convShortcut(pre)
        out = F.relu(self.bn2(self.conv1(pre)))
        if self.drop_rate > 0:
            out = F.dropout(out, p=self.drop_rate, training=self.training)
        return self.conv2(out) + shortcut


class NetworkBlock(nn.Module):
    """``n`` WideBasic blocks; only the first one changes width/stride."""

    def __init__(self, n: int, in_planes: int, out_planes: int, stride: int,
                 drop_rate: float = 0.0):
        super().__init__()
        self.layer = nn.Sequential(*[
            WideBasic(in_planes if i == 0 else out_planes, out_planes,
                      stride if i == 0 else 1, drop_rate)
            for i in range(n)
        ])

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layer(x)


class WideResNet(Classifier):
    """WRN-depth-widen; feature_dim = 64 * widen."""

    classifier_key = "fc"
    first_conv_key = "conv1.weight"

    def __init__(self, depth: int, widen: int, num_classes: int, in_channels: int = 3,
                 drop_rate: float = 0.0):
        super().__init__()
        if (depth - 4) % 6 != 0:
            raise ValueError(f"WRN depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        widths = (16, 16 * widen, 32 * widen, 64 * widen)
        self.conv1 = nn.Conv2d(in_channels, widths[0], 3, stride=1, padding=1, bias=False)
        self.block1 = NetworkBlock(n, widths[0], widths[1], 1, drop_rate)
        self.block2 = NetworkBlock(n, widths[1], widths[2], 2, drop_rate)
        self.block3 = NetworkBlock(n, widths[2], widths[3], 2, drop_rate)
        self.bn1 = nn.BatchNorm2d(widths[3])
        self.fc = nn.Linear(widths[3], num_classes)
        self._record(num_classes=num_classes, in_channels=in_channels, feature_dim=widths[3])
        for m in self.modules():  # the WRN paper's initialisation
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)
            elif isinstance(m, nn.Linear):
                nn.init.zeros_(m.bias)

    def embed(self, x: torch.Tensor) -> torch.Tensor:
        out = self.block3(self.block2(self.block1(self.conv1(x))))
        return global_pool(F.relu(self.bn1(out)))


def _wrn(name: str, depth: int, widen: int):
    """Register a fixed depth/widen WideResNet as its own class (so it carries the key names)."""

    def __init__(self, num_classes: int, in_channels: int = 3):
        WideResNet.__init__(self, depth, widen, num_classes, in_channels)

    cls = type(f"WRN_{depth}_{widen}", (WideResNet,), {
        "__init__": __init__, "__doc__": f"WRN-{depth}-{widen}.", "__module__": __name__})
    return MODELS.register(name)(cls)


WRN_16_1 = _wrn("wrn_16_1", 16, 1)
WRN_16_2 = _wrn("wrn_16_2", 16, 2)
WRN_40_1 = _wrn("wrn_40_1", 40, 1)
WRN_40_2 = _wrn("wrn_40_2", 40, 2)
