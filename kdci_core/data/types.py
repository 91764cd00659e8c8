"""Plain containers shared by every dataset reader and by the rest of the engine.

Images everywhere in the engine are float32 ``N x C x H x W`` tensors already normalised with
the dataset's mean/std; ``DatasetInfo`` is the one place that knows how to go to and from [0, 1].
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class DatasetInfo:
    """What a model needs to know about its data: classes, input shape and normalisation."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]
    #: the augmentation the references apply to this kind of data when a student trains on it
    #: (``data.augment.AUGMENTATIONS``): ``crop-flip`` for natural RGB images, ``none`` otherwise
    augment: str = "none"

    def _stats(self, x: Tensor) -> tuple[Tensor, Tensor]:
        # Built on the tensor's own device/dtype so that the same info works on CPU and GPU.
        shape = (1, len(self.mean), 1, 1)
        mean = torch.tensor(self.mean, dtype=x.dtype, device=x.device).view(shape)
        std = torch.tensor(self.std, dtype=x.dtype, device=x.device).view(shape)
        return mean, std

    def normalize(self, x01: Tensor) -> Tensor:
        """Map images in [0, 1] (N x C x H x W) to the normalised space models work in."""
        mean, std = self._stats(x01)
        return (x01 - mean) / std

    def denormalize(self, x: Tensor) -> Tensor:
        """Map normalised images back to [0, 1] (clamped), e.g. to display or save them."""
        mean, std = self._stats(x)
        return (x * std + mean).clamp_(0.0, 1.0)


@dataclass
class ImageSet:
    """Normalised images (float32 N x C x H x W) and their int64 labels (None when unlabeled)."""

    images: Tensor
    labels: Tensor | None

    def __len__(self) -> int:
        return int(self.images.shape[0])


@dataclass
class LabeledDataset:
    """A loaded dataset: its info, both splits, where it came from and how many files were bad."""

    info: DatasetInfo
    train: ImageSet
    test: ImageSet
    source: str
    skipped: int = 0
