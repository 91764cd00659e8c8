"""DCGAN-style image generators of the generator-based DFKD methods, in the references' forms.

z -> Linear -> (stem*ngf) x s x s with s = ceil(img_size / 4) -> BN -> up x2 -> conv/BN/LeakyReLU
-> up x2 -> conv/BN/LeakyReLU -> conv to ``nc`` -> the output head. Sizes not divisible by 4
(e.g. 30) are resized to ``img_size`` bilinearly before the head. Above 64 px (a teacher's own
resolution, e.g. 224) the first map would grow with the square of the size (its Linear: 100 M
weights at 224 px), so it stays at most ``MAX_INIT`` px and one more up x2 -> conv/BN/LeakyReLU
block is added per doubling, as deeper DCGANs do; up to 64 px the network is the references'
exactly (same layers, same weights for a seed). Every head delivers images in
the engine's *normalised* space (the dataset's mean/std), as the students see them:
- ``sigmoid``: DataFree/Fast-Datafree/MosaicKD ``Generator`` (convolutions without bias): a
  Sigmoid to [0, 1], then the dataset normalisation (``mean``, ``std``);
- ``tanh-bn``: DAFL's generator (huawei-noah DAFL-train.py): convolutions with bias, BatchNorm
  eps 0.8 in the blocks, Tanh, then BatchNorm without affine;
- ``bn``: this project's earlier head (BatchNorm without affine; no Tanh), kept for old runs.
Two widths of the first stage (``stem``): DataFree's ``Generator`` (2 x ngf, ``dcgan``) and
MosaicKD's own (4 x ngf, engine/models/generator.py: ``mosaickd``, 2.03M parameters at ngf 64,
nz 100, 32 px, against DataFree's 1.05M); the rest is the same network.
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F

from ..common.errors import InputError
from .base import GENERATORS

OUTPUTS = ("sigmoid", "tanh-bn", "bn")
#: the largest first feature map (px): reached at 64 px, beyond which up-blocks are added
MAX_INIT = 16


def extra_upsamplings(img_size: int) -> int:
    """Up x2 blocks beyond the references' two, so that the first map is at most MAX_INIT px."""
    return max(0, math.ceil(math.log2(math.ceil(img_size / 4) / MAX_INIT)))


@GENERATORS.register("dcgan")
class DCGANGenerator(nn.Module):
    """Noise ``B x nz`` -> images ``B x nc x img_size x img_size`` in normalised space."""

    #: the first stage's width, in units of ``ngf`` (DataFree's Generator: 2)
    stem = 2

    def __init__(self, *, nz: int = 256, img_size: int, nc: int, ngf: int = 64, output: str = "bn",
                 mean=None, std=None):
        super().__init__()
        if output not in OUTPUTS:
            raise InputError(f"generator output: expected one of {', '.join(OUTPUTS)}, found {output!r}")
        if output == "sigmoid" and (mean is None or std is None):
            raise InputError("generator output sigmoid: needs the dataset's mean and std to normalise")
        self.nz, self.img_size, self.nc, self.ngf, self.output = nz, img_size, nc, ngf, output
        extra = extra_upsamplings(img_size)
        self.init_size = max(1, math.ceil(img_size / 4 / 2 ** extra))
        dafl = output == "tanh-bn"
        bias, eps = dafl, (0.8 if dafl else 1e-5)
        self.l1 = nn.Linear(nz, ngf * self.stem * self.init_size ** 2)
        self.conv_blocks0 = nn.BatchNorm2d(ngf * self.stem)
        self.conv_blocks1 = nn.Sequential(
            nn.Conv2d(ngf * self.stem, ngf * 2, 3, padding=1, bias=bias),
            nn.BatchNorm2d(ngf * 2, eps=eps),
            nn.LeakyReLU(0.2, inplace=True),
        )
        self.conv_blocks2 = nn.Sequential(
            nn.Conv2d(ngf * 2, ngf, 3, padding=1, bias=bias),
            nn.BatchNorm2d(ngf, eps=eps),
            nn.LeakyReLU(0.2, inplace=True),
            nn.Conv2d(ngf, nc, 3, padding=1),
        )
        #: empty up to 64 px (no state-dict keys, no draws from the seed's stream)
        self.up_blocks = nn.ModuleList(
            nn.Sequential(nn.Conv2d(ngf * 2, ngf * 2, 3, padding=1, bias=bias),
                          nn.BatchNorm2d(ngf * 2, eps=eps), nn.LeakyReLU(0.2, inplace=True))
            for _ in range(extra))
        if output == "sigmoid":
            self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, -1, 1, 1))
            self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, -1, 1, 1))
        else:
            self.out_norm = nn.BatchNorm2d(nc, affine=False)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        s = self.init_size
        out = self.l1(z.flatten(1)).view(z.shape[0], self.ngf * self.stem, s, s)
        out = F.interpolate(self.conv_blocks0(out), scale_factor=2, mode="nearest")
        out = F.interpolate(self.conv_blocks1(out), scale_factor=2, mode="nearest")
        for block in self.up_blocks:
            out = F.interpolate(block(out), scale_factor=2, mode="nearest")
        out = self.conv_blocks2(out)
        if out.shape[-1] != self.img_size:
            out = F.interpolate(out, size=(self.img_size, self.img_size), mode="bilinear",
                                align_corners=False)
        if self.output == "sigmoid":
            return (torch.sigmoid(out) - self.mean) / self.std
        if self.output == "tanh-bn":
            out = torch.tanh(out)
        return self.out_norm(out)


@GENERATORS.register("mosaickd")
class MosaicKDGenerator(DCGANGenerator):
    """MosaicKD's own generator: the first stage 4 x ngf wide (MosaicKD engine/models/generator.py)."""

    stem = 4
