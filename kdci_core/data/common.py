"""The dataset registry and the last step every reader shares: overrides, statistics, normalising.

A reader only decodes its files into [0, 1] tensors; ``finish`` turns them into a
``LabeledDataset`` the same way for all of them, so overrides behave identically everywhere.
"""

from __future__ import annotations

import math
import numbers
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from torch import Tensor

from ..common.errors import InputError, check_range
from ..common.registry import Registry
from .transforms import channel_stats, convert
from .types import DatasetInfo, ImageSet, LabeledDataset

# name -> loader(root, *, image_size, in_channels, mean, std) -> LabeledDataset
DATASETS: Registry[Callable[..., LabeledDataset]] = Registry("dataset")

MIN_SIZE, MAX_SIZE = 8, 1024  # the models accept inputs from 8 px; 1024 bounds memory
#: channels of each dataset as stored (``folder``: 1 only when every image is grey, so unknown
#: before its images are read)
NATIVE_CHANNELS = {"digits": 1, "fashion-mnist": 1, "cifar10": 3, "cifar100": 3}
#: bounds of a normalisation given by a user or a teacher (images are in [0, 1]: a mean far
#: outside it or a std of 1e-7 is a typo or a different pixel scale, not a normalisation)
MEAN_BOUND, STD_RANGE = 10.0, (1e-4, 100.0)


def check_overrides(image_size, in_channels) -> tuple[int | None, int | None]:
    """Validate the optional ``image_size`` / ``in_channels`` overrides (None = the native one)."""
    if image_size is not None:
        image_size = check_range("image_size", image_size, low=MIN_SIZE, high=MAX_SIZE,
                                 integer=True)
    if in_channels is not None:
        if isinstance(in_channels, bool) or in_channels not in (1, 3):
            raise InputError(f"in_channels: expected 1 or 3, found {in_channels!r}")
        in_channels = int(in_channels)
    return image_size, in_channels


def check_stats(name: str, values, kind: str) -> tuple[float, ...] | None:
    """A ``kind`` ("mean" or "std") override (None = the dataset's): 1 value (every channel) or
    one per channel (1 or 3), finite, the std > 0; an InputError names ``name`` and the values."""
    if values is None:
        return None
    if isinstance(values, (str, bytes)) or not isinstance(values, Sequence) \
            or len(values) not in (1, 3):
        raise InputError(f"{name}: expected 1 or 3 numbers (one per channel), found {values!r}")
    low, high = (-MEAN_BOUND, MEAN_BOUND) if kind == "mean" else STD_RANGE
    out = []
    for v in values:
        if isinstance(v, bool) or not isinstance(v, numbers.Real) or not math.isfinite(v) \
                or not low <= v <= high:
            raise InputError(f"{name}: expected numbers between {low} and {high}, found {values!r}")
        out.append(float(v))
    return tuple(out)


def per_channel(name: str, values: tuple[float, ...], channels: int) -> tuple[float, ...]:
    """``values`` for ``channels`` channels: one value repeated, else exactly one per channel."""
    if len(values) == 1:
        return values * channels
    if len(values) != channels:
        raise InputError(f"{name}: expected {channels} value(s), one per input channel, found "
                         f"{len(values)}: {list(values)}")
    return values


def as_path(root, what: str) -> Path:
    """``root`` as a Path, or an InputError when a dataset that needs files got none."""
    if root is None or str(root).strip() == "":
        raise InputError(f"{what}: expected a data root folder (--data-root), found none")
    return Path(root).expanduser()


def normalize_(x01: Tensor, info: DatasetInfo) -> Tensor:
    """In-place ``info.normalize`` (datasets are large: avoid a second full-size copy)."""
    mean = torch.tensor(info.mean, dtype=x01.dtype).view(1, -1, 1, 1)
    std = torch.tensor(info.std, dtype=x01.dtype).view(1, -1, 1, 1)
    return x01.sub_(mean).div_(std)


def _labels(y) -> Tensor:
    return torch.from_numpy(np.asarray(y, dtype=np.int64).copy())


def finish(name: str, *, train: Tensor, train_labels, test: Tensor, test_labels,
           class_names: Sequence[str], source: str, image_size: int | None,
           in_channels: int | None, mean: Sequence[float] | None = None,
           std: Sequence[float] | None = None, skipped: int = 0, augment: str = "none",
           norm_mean: Sequence[float] | None = None,
           norm_std: Sequence[float] | None = None) -> LabeledDataset:
    """Apply overrides, pick the normalisation and build the ``LabeledDataset``.

    ``train``/``test`` are float [0, 1] N x C x H x W. ``mean``/``std`` are the dataset's
    standard statistics if it has some (kept when the channels are unchanged, repeated for
    grey -> RGB); otherwise, or for RGB -> grey, they are computed on the train split.
    ``norm_mean``/``norm_std``: the caller's normalisation (a teacher's, a user's), each replacing
    the dataset's own; they change the normalisation only, never the pixels.
    ``augment``: the student-side augmentation the references use on such data (DatasetInfo).
    """
    image_size, in_channels = check_overrides(image_size, in_channels)
    norm_mean, norm_std = check_stats("mean", norm_mean, "mean"), check_stats("std", norm_std, "std")
    native_c, h, w = train.shape[1], train.shape[2], train.shape[3]
    if image_size is None:
        if h != w:
            raise InputError(f"{source}: images are {h}x{w}, expected square images; "
                             f"pass image_size to resize them")
        image_size = h
    channels = in_channels or native_c
    train = convert(train, size=image_size, channels=channels)
    test = convert(test, size=image_size, channels=channels)
    if norm_mean is not None and norm_std is not None:
        stats = (norm_mean, norm_std)  # the caller's: the dataset's own are not needed
    elif mean is not None and std is not None and channels == native_c:
        stats = (tuple(mean), tuple(std))
    elif mean is not None and std is not None and native_c == 1 and channels == 3:
        stats = (tuple(mean) * 3, tuple(std) * 3)
    else:
        stats = channel_stats(train)
    stats = (per_channel("mean", norm_mean, channels) if norm_mean is not None else stats[0],
             per_channel("std", norm_std, channels) if norm_std is not None else stats[1])
    info = DatasetInfo(name=name, num_classes=len(class_names), in_channels=channels,
                       image_size=image_size, mean=stats[0], std=stats[1],
                       class_names=tuple(class_names), augment=augment)
    return LabeledDataset(
        info=info,
        train=ImageSet(normalize_(train.contiguous(), info), _labels(train_labels)),
        test=ImageSet(normalize_(test.contiguous(), info), _labels(test_labels)),
        source=source, skipped=int(skipped))
