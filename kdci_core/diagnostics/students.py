"""Views of finished students: test-split features, per-class scores, and corrected instances.

The paper's Figures 5 and 6 compare a vanilla student with a KDCI student on the same test
images; here any two finished runs of the run store can be compared that way. Students are
loaded from the run's ``student.safetensors`` with the same safe loader as teachers.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from ..data import ImageSet, load_dataset
from ..errors import InputError
from ..runstore import Run
from ..teachers import load_teacher
from ..training import Evaluation, evaluate


@dataclass
class StudentView:
    """One finished student on the test split: scores and penultimate features of a subset."""

    run_id: str
    label: str
    evaluation: Evaluation
    features: np.ndarray         # n x D penultimate features of the test images at ``indices``
    indices: np.ndarray          # which test images (a fixed subset when the split is large)


def load_run_student(run: Run, *, device="cpu") -> nn.Module:
    """The student a finished run saved, validated against its stored architecture."""
    cfg, path = run.config(), run.path("student.safetensors")
    if not path.exists():
        status = run.status().get("status")
        raise InputError(f"run {run.run_id}: no student checkpoint (status {status}); only finished "
                         f"runs have one")
    return load_teacher(path, cfg["student"], device=device).model


@torch.no_grad()
def penultimate_features(model: nn.Module, images: torch.Tensor, *, device, batch_size: int = 512) -> np.ndarray:
    """The classifier's features before its last layer (what t-SNE/UMAP of a student shows)."""
    model.eval()
    out = [model(images[i:i + batch_size].to(device), return_features=True)[1].flatten(1).float().cpu()
           for i in range(0, len(images), batch_size)]
    return torch.cat(out).numpy().astype(np.float64)


def subset_indices(n: int, max_points: int, seed: int = 0) -> np.ndarray:
    """A fixed, sorted random subset (all when ``n <= max_points``): same images for every run."""
    if n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def run_label(run: Run) -> str:
    cfg = run.config()
    return f"{cfg.get('method')} kdci={'on' if cfg.get('kdci') else 'off'} seed {cfg.get('seed')}"


def student_view(run: Run, test: ImageSet, *, num_classes: int, device="cpu", max_points: int = 2000,
                 seed: int = 0) -> StudentView:
    model = load_run_student(run, device=device)
    ev = evaluate(model, test, num_classes=num_classes, device=device)
    idx = subset_indices(len(test), max_points, seed)
    feats = penultimate_features(model, test.images[torch.from_numpy(idx)], device=device)
    return StudentView(run.run_id, run_label(run), ev, feats, idx)


def run_test_split(run: Run) -> ImageSet:
    """The test split a run was scored on (from its stored config)."""
    cfg = run.config()
    return load_dataset(cfg["dataset"], cfg.get("data_root")).test


@dataclass
class Corrections:
    """Test images one student gets right and the other wrong (indices into the test split)."""

    fixed: np.ndarray    # right with ``a`` (e.g. KDCI), wrong with ``b`` (vanilla)
    broken: np.ndarray   # wrong with ``a``, right with ``b``

    def to_dict(self) -> dict:
        return {"fixed": self.fixed.tolist(), "broken": self.broken.tolist()}


def corrected_examples(labels, pred_a, pred_b) -> Corrections:
    labels, pred_a, pred_b = (np.asarray(v) for v in (labels, pred_a, pred_b))
    if not (labels.shape == pred_a.shape == pred_b.shape) or labels.ndim != 1:
        raise InputError(f"predictions: expected three equal-length vectors, found shapes "
                         f"{labels.shape}, {pred_a.shape}, {pred_b.shape}")
    right_a, right_b = pred_a == labels, pred_b == labels
    return Corrections(np.flatnonzero(right_a & ~right_b), np.flatnonzero(~right_a & right_b))


def per_class_delta(a: Evaluation, b: Evaluation) -> np.ndarray:
    """Per-class accuracy of ``a`` minus ``b`` (points)."""
    return np.asarray(a.per_class, dtype=float) - np.asarray(b.per_class, dtype=float)
