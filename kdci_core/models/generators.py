"""DCGAN-style image generator used by the generator-based DFKD methods (DAFL, DFAD, CMI...).

z -> Linear -> (2*ngf) x s x s with s = ceil(img_size / 4) -> BN -> up x2 -> conv/BN/LeakyReLU
-> up x2 -> conv/BN/LeakyReLU -> conv to ``nc``. Sizes not divisible by 4 (e.g. 30) are
resized to ``img_size`` by bilinear interpolation at the end. The output goes through
``BatchNorm2d(nc, affine=False)`` instead of tanh: the students see *normalised* images
(zero mean, unit variance per channel), not [-1, 1] images, so a tanh would be the wrong range.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from .base import GENERATORS


@GENERATORS.register("dcgan")
class DCGANGenerator(nn.Module):
    """Noise ``B x nz`` -> images ``B x nc x img_size x img_size`` in normalised space."""

    def __init__(self, *, nz: int = 256, img_size: int, nc: int, ngf: int = 64):
        super().__init__()
        self.nz, self.img_size, self.nc, self.ngf = nz, img_size, nc, ngf
        self.init_size = max(1, math.ceil(img_size / 4))
        self.l1 = nn.Linear(nz, ngf * 2 * self.init_size ** 2)
        self.conv_blocks0 = nn.BatchNorm2d(ngf * 2)
        self.conv_blocks1 = nn.Sequential(
            nn.Conv2d(ngf * 2, ngf * 2, 3, padding=1, bias=False),
            nn.BatchNorm2d(ngf * 2),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.conv_blocks2 = nn.Sequential(
            nn.Conv2d(ngf * 2, ngf, 3, padding=1, bias=False),
            nn.BatchNorm2d(ngf),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, nc, 3, padding=1),
        )
        self.out_norm = nn.BatchNorm2d(nc, affine=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.init_size
        out = self.l1(z.flatten(1)).view(z.shape[0], self.ngf * 2, s, s)
        out = F.interpolate(self.conv_blocks0(out), scale_factor=2, mode="nearest")
        out = F.interpolate(self.conv_blocks1(out), scale_factor=2, mode="nearest")
        out = self.conv_blocks2(out)
        if out.shape[-1] != self.img_size:
            out = F.interpolate(out, size=(self.img_size, self.img_size), mode="bilinear",
                                align_corners=False)
        return self.out_norm(out)
