"""A distribution shift we set ourselves, for experiments where the confounder is known: a
labelled split subsampled long-tailed (largest over smallest class = ``imbalance``) and its
images degraded in quality (Gaussian blur and noise, in pixel space)."""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..common.errors import check_range


def long_tailed_indices(labels: Tensor, imbalance: float, seed: int) -> Tensor:
    """Indices of a long-tailed subset: class c keeps n_max * imbalance^(-c / (C - 1)) of its
    images (class 0 the head, the last class the tail; n_max = the smallest class's size, so every
    class can give its share), drawn at random; ``imbalance`` 1: the classes equal in size."""
    imbalance = float(check_range("imbalance", imbalance, low=1.0, high=1e6))
    labels = labels.cpu()
    classes = labels.unique().tolist()
    n_max = min(int((labels == c).sum()) for c in classes)
    gen = torch.Generator().manual_seed(seed)
    keep = []
    for rank, c in enumerate(classes):
        members = (labels == c).nonzero().flatten()
        n = max(1, round(n_max * imbalance ** (-rank / max(len(classes) - 1, 1))))
        keep.append(members[torch.randperm(len(members), generator=gen)[:n]])
    return torch.cat(keep).sort().values


def degrade(x01: Tensor, *, blur: float = 0.0, noise: float = 0.0, seed: int = 0) -> Tensor:
    """Images in [0, 1], blurred by a Gaussian of std ``blur`` px and with Gaussian noise of std
    ``noise`` added, clamped back to [0, 1]."""
    blur = float(check_range("blur", blur, low=0.0, high=32.0))
    noise = float(check_range("noise", noise, low=0.0, high=10.0))
    out = x01
    if blur > 0:
        from torchvision.transforms.functional import gaussian_blur

        k = 2 * math.ceil(2 * blur) + 1
        out = gaussian_blur(out, [k, k], [blur, blur])
    if noise > 0:
        gen = torch.Generator().manual_seed(seed)
        out = out + noise * torch.randn(out.shape, generator=gen)
    return out.clamp(0.0, 1.0)
