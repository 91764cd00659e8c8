"""Data-level shift corrections at the loop's one sampling step, beside KDCI and combinable with
it and with every method (``--correction``):

- ``balanced``: the student's batch is resampled class-balanced by the teacher's pseudo-labels:
  ``OVERSAMPLE`` x batch candidates are drawn from the method, labelled by the teacher, and each
  slot takes a class uniformly among the classes present, then a candidate of that class (with
  replacement). Sampling methods also select their data class-balanced (DFND's ``balanced``
  selection, MosaicKD's likewise), set by the config.
- ``reweight``: per-sample weights on the student's losses proportional to 1 / the pseudo-label
  class share, normalised to mean 1 over the batch; the shares are an exponential moving
  average (``MOMENTUM``) of the batches' pseudo-label histograms, so one batch's noise does not
  decide them.
"""

from __future__ import annotations

import torch

CORRECTIONS = ("none", "balanced", "reweight")
OVERSAMPLE = 4
MOMENTUM = 0.9


class BalancedResampler:
    """Draws ``OVERSAMPLE`` x the batch from a sampler and keeps a class-balanced batch of it."""

    def __init__(self, num_classes: int, gen: torch.Generator, oversample: int = OVERSAMPLE):
        self.num_classes, self.rng, self.oversample = num_classes, gen, oversample

    def indices(self, pseudo_labels: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` indices into the candidates: a uniform class per slot, then a uniform member."""
        labels = pseudo_labels.cpu()
        present = labels.unique()
        classes = present[torch.randint(0, len(present), (n,), generator=self.rng)]
        out = torch.empty(n, dtype=torch.long)
        for c in present.tolist():
            slots = (classes == c).nonzero().flatten()
            members = (labels == c).nonzero().flatten()
            out[slots] = members[torch.randint(0, len(members), (len(slots),), generator=self.rng)]
        return out.to(pseudo_labels.device)

    def __call__(self, sample, teacher, n: int) -> torch.Tensor:
        candidates = sample(self.oversample * n)
        with torch.no_grad():
            labels = teacher(candidates).argmax(1)
        return candidates[self.indices(labels, n)]


class ClassReweighter:
    """Per-sample weights 1 / share(pseudo-class), the shares a moving average over batches."""

    def __init__(self, num_classes: int, momentum: float = MOMENTUM):
        self.num_classes, self.momentum = num_classes, momentum
        self.shares: torch.Tensor | None = None

    def __call__(self, teacher_logits: torch.Tensor) -> torch.Tensor:
        labels = teacher_logits.argmax(1)
        batch = torch.bincount(labels, minlength=self.num_classes).float() / len(labels)
        self.shares = batch if self.shares is None else (
            self.momentum * self.shares.to(batch.device) + (1 - self.momentum) * batch)
        w = 1.0 / self.shares.clamp_min(1e-6)[labels]
        return w / w.mean()
