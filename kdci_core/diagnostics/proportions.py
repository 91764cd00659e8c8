"""Class proportions of synthetic images and how far they are from balanced.

Data-free generators drift towards the classes the teacher finds easiest; a student distilled
on such a set under-learns the rest. These numbers make that drift visible, overall and (for
methods that synthesise in rounds) round by round.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..common.errors import InputError


def _as_labels(labels_or_logits, num_classes: int, field: str = "labels") -> np.ndarray:
    """Int label vector from labels (N) or logits (N x C, argmax), validated against ``num_classes``."""
    if isinstance(labels_or_logits, torch.Tensor):
        labels_or_logits = labels_or_logits.detach().float().cpu().numpy() \
            if labels_or_logits.is_floating_point() else labels_or_logits.detach().cpu().numpy()
    arr = np.asarray(labels_or_logits)
    if int(num_classes) < 1:
        raise InputError(f"num_classes: expected a positive integer, found {num_classes!r}")
    if arr.ndim == 2:
        if arr.shape[1] != num_classes:
            raise InputError(f"{field}: expected N x {num_classes} logits, found shape {arr.shape}")
        arr = arr.argmax(axis=1)
    elif arr.ndim != 1:
        raise InputError(f"{field}: expected a label vector or an N x C logits array, found shape {arr.shape}")
    if arr.size == 0:
        raise InputError(f"{field}: expected at least one label, found none")
    if not np.issubdtype(arr.dtype, np.integer):
        if not np.all(np.equal(np.mod(arr, 1), 0)):
            raise InputError(f"{field}: expected integer class indices, found dtype {arr.dtype}")
        arr = arr.astype(np.int64)
    bad = (arr < 0) | (arr >= num_classes)
    if bad.any():
        raise InputError(f"{field}: expected class indices in [0, {num_classes}), found "
                         f"{int(bad.sum())} outside (e.g. {int(arr[bad][0])})")
    return arr.astype(np.int64)


def class_proportions(labels_or_logits, num_classes: int) -> np.ndarray:
    """Share of each class (length ``num_classes``, float64, sums to 1)."""
    labels = _as_labels(labels_or_logits, num_classes)
    counts = np.bincount(labels, minlength=num_classes).astype(np.float64)
    return counts / counts.sum()


@dataclass
class Imbalance:
    normalised_entropy: float  # H(p) / log C; 1 = perfectly balanced, 0 = a single class
    kl_to_uniform: float       # nats, = log C - H(p); 0 = balanced
    max_min_ratio: float       # max p / min p; math.inf when some class is empty
    empty_classes: int
    dominant_class: int
    dominant_share: float

    def to_dict(self) -> dict:
        """JSON-safe: an infinite ``max_min_ratio`` (some class empty) becomes None (JSON null)."""
        d = asdict(self)
        if not math.isfinite(d["max_min_ratio"]):
            d["max_min_ratio"] = None
        return d


def imbalance(proportions) -> Imbalance:
    """Balance statistics of a proportion vector (normalised to sum 1 if it does not)."""
    p = np.asarray(proportions, dtype=np.float64)
    if p.ndim != 1 or p.size == 0 or not np.all(np.isfinite(p)) or (p < 0).any() or p.sum() <= 0:
        raise InputError(f"proportions: expected a non-empty vector of non-negative shares with a "
                         f"positive sum, found {np.array2string(p, threshold=12)}")
    p = p / p.sum()
    c = p.size
    nz = p[p > 0]
    entropy = float(-(nz * np.log(nz)).sum())
    log_c = math.log(c)
    low = float(p.min())
    return Imbalance(
        normalised_entropy=entropy / log_c if c > 1 else 1.0,
        kl_to_uniform=max(0.0, log_c - entropy),
        max_min_ratio=float(p.max()) / low if low > 0 else math.inf,
        empty_classes=int((p == 0).sum()),
        dominant_class=int(p.argmax()),
        dominant_share=float(p.max()),
    )


def proportions_by_round(labels, rounds, num_classes: int) -> list[np.ndarray]:
    """Class proportions per synthesis round (rounds 0..max, in order; a round with no image is
    all zeros rather than skipped, so list index = round index)."""
    lab = _as_labels(labels, num_classes)
    rnd = np.asarray(rounds.detach().cpu().numpy() if isinstance(rounds, torch.Tensor) else rounds)
    if rnd.shape != lab.shape or not np.issubdtype(rnd.dtype, np.integer) or (rnd < 0).any():
        raise InputError(f"rounds: expected {lab.size} non-negative integer round indices (one per "
                         f"label), found shape {rnd.shape} dtype {rnd.dtype}")
    out = []
    for r in range(int(rnd.max()) + 1):
        counts = np.bincount(lab[rnd == r], minlength=num_classes).astype(np.float64)
        out.append(counts / counts.sum() if counts.sum() > 0 else counts)
    return out
