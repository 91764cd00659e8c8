"""Tensor conversions every reader shares, written once: channels, size, [0, 1] scaling, stats.

All functions take and return float ``N x C x H x W`` tensors in [0, 1] unless said otherwise.
"""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..common.errors import InputError

# ITU-R 601-2 luma, the weights PIL uses for mode "L", so grey images agree with PIL's.
LUMA = (0.299, 0.587, 0.114)
_CHUNK = 4096  # images per interpolation call: bounds the temporary memory of big datasets


def uint8_to_float(arr: np.ndarray) -> Tensor:
    """uint8 images, grey N x H x W or channel-last N x H x W x C -> float [0, 1] N x C x H x W."""
    if arr.ndim == 3:
        arr = arr[:, None, :, :]
    elif arr.ndim == 4:
        arr = arr.transpose(0, 3, 1, 2)
    else:
        raise ValueError(f"expected 3-D or 4-D image array, got shape {arr.shape}")
    return chw_uint8_to_float(arr)


def chw_uint8_to_float(arr: np.ndarray) -> Tensor:
    """uint8 N x C x H x W -> contiguous float32 tensor in [0, 1]."""
    if arr.dtype != np.uint8 or not arr.flags.c_contiguous or not arr.flags.writeable:
        arr = np.array(arr, dtype=np.uint8, order="C")  # torch wants writable, contiguous memory
    return torch.from_numpy(arr).to(torch.float32).div_(255.0)


def to_channels(x: Tensor, channels: int) -> Tensor:
    """Convert 1 <-> 3 channels: grey is repeated to RGB; RGB becomes grey by luma weights."""
    have = x.shape[1]
    if channels not in (1, 3):
        raise InputError(f"in_channels: expected 1 or 3, found {channels!r}")
    if have == channels:
        return x
    if have == 1 and channels == 3:
        return x.expand(-1, 3, -1, -1).contiguous()
    if have == 3 and channels == 1:
        w = torch.tensor(LUMA, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    raise InputError(f"images: expected 1 or 3 channels, found {have}")


def resize(x: Tensor, size: int) -> Tensor:
    """Resize to ``size x size`` (bilinear with antialias, so downscaling does not alias).

    Bilinear weights are convex, so values stay in [0, 1]. Done in chunks to bound memory.
    """
    if x.shape[-2:] == (size, size):
        return x
    parts = [
        F.interpolate(x[i:i + _CHUNK], size=(size, size), mode="bilinear",
                      align_corners=False, antialias=True)
        for i in range(0, x.shape[0], _CHUNK)
    ]
    return torch.cat(parts) if parts else x.new_zeros((0, x.shape[1], size, size))


def convert(x: Tensor, *, size: int | None = None, channels: int | None = None) -> Tensor:
    """Apply optional resize and channel conversion (channels first: cheaper when reducing)."""
    if channels is not None and channels < x.shape[1]:
        x = to_channels(x, channels)
    if size is not None:
        x = resize(x, size)
    if channels is not None:
        x = to_channels(x, channels)
    return x


def channel_stats(x01: Tensor) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-channel mean and (population) std of a [0, 1] batch, as rounded Python tuples."""
    if x01.shape[0] == 0:
        raise InputError("images: cannot compute mean/std of an empty training split")
    # float64 sums chunk by chunk: a float64 copy of a whole dataset at 64+ px is gigabytes
    total = torch.zeros(x01.shape[1], dtype=torch.float64)
    squares = torch.zeros_like(total)
    for i in range(0, x01.shape[0], _CHUNK):
        part = x01[i:i + _CHUNK].transpose(0, 1).reshape(x01.shape[1], -1).to(torch.float64)
        total += part.sum(dim=1)
        squares += part.square().sum(dim=1)
    count = x01[0, 0].numel() * x01.shape[0]
    mean = total / count
    var = (squares / count - mean.square()).clamp_min(0.0)
    std = var.sqrt().clamp_min(1e-3)  # a constant image must not divide by 0
    return (tuple(round(float(v), 4) for v in mean), tuple(round(float(v), 4) for v in std))


def stratified_split(labels: np.ndarray, test_fraction: float = 0.2, seed: int = 0
                     ) -> tuple[np.ndarray, np.ndarray]:
    """Deterministic per-class split (train idx, test idx); a class of one image stays in train.

    Written here rather than sklearn's ``train_test_split`` because that one refuses small
    folders (classes of one image, fewer test images than classes), which users do have.
    """
    rng = np.random.default_rng(seed)
    train, test = [], []
    for c in np.unique(labels):
        idx = np.flatnonzero(labels == c)
        idx = idx[rng.permutation(len(idx))]
        n_test = int(round(test_fraction * len(idx)))
        if len(idx) >= 2:
            n_test = min(max(n_test, 1), len(idx) - 1)
        else:
            n_test = 0
        test.append(idx[:n_test])
        train.append(idx[n_test:])
    return np.sort(np.concatenate(train)), np.sort(np.concatenate(test))
