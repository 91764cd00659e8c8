"""Datasets and unlabeled wild pools, all delivered as normalised float32 N x C x H x W tensors.

``load_dataset(name, root)`` reads one of the registered datasets (``dataset_names()``), at an
optional size, channel count and normalisation (a teacher's input spec);
``load_wild_pool(source, info, n=..., seed=...)`` gives unlabeled images in a teacher's input
space. See docs/DATA.md for the layouts each reader expects.
"""

from __future__ import annotations

# Importing the readers registers them in DATASETS.
from . import cifar, digits, folder, idx  # noqa: F401  (registration)
from .common import DATASETS, check_overrides, check_stats
from .types import DatasetInfo, ImageSet, LabeledDataset
from .wild import load_wild_pool

__all__ = ["DATASETS", "DatasetInfo", "ImageSet", "LabeledDataset", "dataset_names",
           "load_dataset", "load_wild_pool"]


def dataset_names() -> list[str]:
    """Registered dataset names, sorted: cifar10, cifar100, digits, fashion-mnist, folder."""
    return DATASETS.names()


def load_dataset(name: str, root=None, *, image_size: int | None = None,
                 in_channels: int | None = None, mean=None, std=None) -> LabeledDataset:
    """Load dataset ``name`` (``root``: its folder, where it has files) with optional overrides.

    Unknown names are an InputError listing the known ones; ``image_size`` resizes to a square
    and ``in_channels`` (1 or 3) converts grey <-> RGB; ``mean``/``std`` (1 value or one per
    channel) replace the dataset's normalisation, e.g. with a teacher's (the pixels are the same).
    Every override is checked before any file is read.
    """
    check_overrides(image_size, in_channels)
    check_stats("mean", mean, "mean"), check_stats("std", std, "std")
    return DATASETS.get(str(name).strip())(root, image_size=image_size, in_channels=in_channels,
                                           mean=mean, std=std)
