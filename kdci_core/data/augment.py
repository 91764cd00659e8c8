"""Image augmentations on normalised N x C x H x W batches (one random draw per batch).

``random_shift`` is the teachers' training augmentation; ``jitter_flip`` is DeepInversion's
input jitter during synthesis (used by the inversion methods).
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
