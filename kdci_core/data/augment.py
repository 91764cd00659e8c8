"""Image augmentations on normalised N x C x H x W batches, differentiable, on the batch's device.

``random_shift`` is the teachers' training augmentation; ``jitter_flip`` is DeepInversion's
input jitter during synthesis (one draw per batch); ``CropFlip`` is the references' CIFAR train
transform per image, used on the students' batches (``student_augmentation``, as each dataset
declares) and inside Fast's and CMI's synthesis.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


def random_shift(x: torch.Tensor, gen: torch.Generator, *, flip: bool, max_frac: float = 0.125):
    """Batch-wise random translation (pad by reflection, crop) and optional horizontal flip."""
    h, w = x.shape[-2:]
    ph, pw = max(1, int(h * max_frac)), max(1, int(w * max_frac))
    padded = F.pad(x, (pw, pw, ph, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    dy = int(torch.randint(0, 2 * ph + 1, (1,), generator=gen))
    dx = int(torch.randint(0, 2 * pw + 1, (1,), generator=gen))
    out = padded[..., dy:dy + h, dx:dx + w]
    if flip and bool(torch.rand(1, generator=gen) < 0.5):
        out = out.flip(-1)
    return out


def jitter_flip(x: torch.Tensor, gen: torch.Generator, *, flip: bool, frac: float = 0.125):
    """Random roll by up to ``frac`` of the size (and horizontal flip): DeepInversion's jitter."""
    h, w = x.shape[-2:]
    lh, lw = int(h * frac), int(w * frac)
    dy = int(torch.randint(-lh, lh + 1, (1,), generator=gen)) if lh else 0
    dx = int(torch.randint(-lw, lw + 1, (1,), generator=gen)) if lw else 0
    out = torch.roll(x, shifts=(dy, dx), dims=(2, 3))
    if flip and bool(torch.rand(1, generator=gen) < 0.5):
        out = out.flip(3)
    return out


#: student-side augmentations a dataset can declare (``DatasetInfo.augment``)
AUGMENTATIONS = ("none", "crop-flip")


class CropFlip:
    """Per-image random crop with zero padding (black in pixel space) and horizontal flip, on
    normalised batches and on their device: torchvision's ``RandomCrop(size, padding)`` +
    ``RandomHorizontalFlip()`` as the references' CIFAR train transform applies them, batched.
    The random draws come from a CPU generator, so runs are reproducible on any device."""

    def __init__(self, info, gen: torch.Generator, padding: int | None = None, flip: bool = True):
        self.info, self.rng, self.flip = info, gen, flip
        self.padding = padding if padding is not None else max(1, round(info.image_size / 8))

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        n, c, h, w = x.shape
        p = self.padding
        black = self.info.normalize(torch.zeros(1, c, 1, 1, dtype=x.dtype, device=x.device))
        padded = F.pad(x - black, (p, p, p, p)) + black  # pads with the normalised black
        dy = torch.randint(0, 2 * p + 1, (n,), generator=self.rng).to(x.device)
        dx = torch.randint(0, 2 * p + 1, (n,), generator=self.rng).to(x.device)
        flip = (torch.rand(n, generator=self.rng) < (0.5 if self.flip else 0.0)).to(x.device)
        rows = dy[:, None] + torch.arange(h, device=x.device)[None]            # n x h
        cols = dx[:, None] + torch.arange(w, device=x.device)[None]            # n x w
        cols = torch.where(flip[:, None], cols.flip(1), cols)
        idx = torch.arange(n, device=x.device)[:, None, None]
        return padded.permute(0, 2, 3, 1)[idx, rows[:, :, None], cols[:, None, :]].permute(0, 3, 1, 2)


def student_augmentation(name: str, info, gen: torch.Generator):
    """The batch augmentation ``name`` (one of AUGMENTATIONS) for data described by ``info``, or
    None for ``none``."""
    if name == "none":
        return None
    if name == "crop-flip":
        return CropFlip(info, gen)
    raise ValueError(f"augmentation: expected one of {', '.join(AUGMENTATIONS)}, found {name!r}")
