"""Views of finished students: test-split features, per-class scores, and corrected instances.

The paper's Figures 5 and 6 compare a vanilla student with a KDCI student on the same test
images; here any two finished runs of the run store can be compared that way
(:func:`student_comparison`). Students are loaded from the run's ``student.safetensors`` with the
same safe loader as teachers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from ..common.errors import InputError
from ..common.progress import Progress
from ..data import ImageSet, load_dataset
from ..diagnostics.projections import NAMES, project
from ..diagnostics.stages import Stages
from ..figures.images import examples_grid
from ..figures.students import embedding_figure, per_class_delta_figure
from ..models.evaluation import Evaluation, evaluate
from ..runs import Run, RunStore
from ..teachers import load_teacher
from .compare import load_finished


@dataclass
class StudentView:
    """One finished student on the test split: scores and penultimate features of a subset."""

    run_id: str
    label: str
    evaluation: Evaluation
    features: np.ndarray         # n x D penultimate features of the test images at ``indices``
    indices: np.ndarray          # which test images (a fixed subset when the split is large)


def load_run_student(run: Run, *, device="cpu", image_size: int | None = None) -> nn.Module:
    """The student a finished run saved, validated against its stored architecture (as given:
    a zoo name, ``tv:NAME`` or ``timm:NAME``); ``image_size``: the run's, which a fixed-size
    architecture (a ViT) is built for."""
    cfg, path = run.config(), run.path("student.safetensors")
    if not path.exists():
        status = run.status().get("status")
        raise InputError(f"run {run.run_id}: no student checkpoint (status {status}); only finished "
                         f"runs have one")
    return load_teacher(path, cfg["student"], device=device, require_finite=False,
                        image_size=image_size).model


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


def student_view(run: Run, test: ImageSet, *, num_classes: int, device="cpu", max_points: int = 2000,
                 seed: int = 0) -> StudentView:
    model = load_run_student(run, device=device, image_size=test.images.shape[-1])
    ev = evaluate(model, test, num_classes=num_classes, device=device)
    idx = subset_indices(len(test), max_points, seed)
    feats = penultimate_features(model, test.images[torch.from_numpy(idx)], device=device)
    return StudentView(run.run_id, run.label, ev, feats, idx)


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


# --- one KDCI on/off pair ---------------------------------------------------------------
@dataclass
class StudentComparison:
    """A KDCI-on and a KDCI-off student on the same test images, and what they need to be drawn."""

    labels: tuple[str, str]
    run_ids: tuple[str, str]
    class_names: list[str]
    projections: list
    point_labels: list[np.ndarray]
    delta: np.ndarray
    fixed: np.ndarray
    broken: np.ndarray
    accuracies: tuple[float, float]
    _grids: dict = field(default_factory=dict, repr=False)

    def figures(self) -> dict:
        return {"embedding": embedding_figure(self.projections, self.point_labels, list(self.labels),
                                              self.class_names),
                "per_class_delta": per_class_delta_figure(
                    self.delta, self.class_names, title=f"Per-class accuracy: {self.labels[0]} minus "
                                                        f"{self.labels[1]}"),
                **self._grids}

    def to_dict(self) -> dict:
        return {"runs": list(self.run_ids), "labels": list(self.labels), "accuracies": list(self.accuracies),
                "per_class_delta": dict(zip(self.class_names, map(float, self.delta))),
                "fixed": len(self.fixed), "broken": len(self.broken),
                "projection": self.projections[0].method if self.projections else None}


def _images(n: int) -> str:
    return f"{n} image" if n == 1 else f"{n} images"


#: progress units of one student's projection (its own stages are scaled into them)
PROJECTION_UNITS = 10


def student_comparison(store: RunStore, run_a: Run | str, run_b: Run | str, *, method: str = "tsne",
                       max_points: int = 1000, max_images: int = 32, device="cpu",
                       seed: int = 0, progress: Progress = None) -> StudentComparison:
    """``run_a`` (KDCI on) and ``run_b`` (off) on their shared test split: features, deltas, corrections.

    ``progress``: one bar over the test split, each run evaluated, each projection (its own
    stages inside) and the corrected examples."""
    ids = [r if isinstance(r, str) else r.run_id for r in (run_a, run_b)]
    if ids[0] == ids[1]:
        raise InputError(f"students: expected two different runs, found {ids[0]} twice")
    a, b = load_finished(store, ids)
    ca, cb = a.config(), b.config()
    if (ca.get("dataset"), ca.get("data_root")) != (cb.get("dataset"), cb.get("data_root")):
        raise InputError(f"students: runs {a.run_id} and {b.run_id} were scored on different datasets "
                         f"({ca.get('dataset')} and {cb.get('dataset')})")
    stages = Stages(progress, 1 + 2 + 2 * PROJECTION_UNITS + 1)
    stages.start(f"students: loading the test split of {ca['dataset']}")
    data = load_dataset(ca["dataset"], ca.get("data_root"))
    info, test = data.info, data.test
    views = []
    for r in (a, b):
        stages.start(f"students: evaluating {r.label} (…{r.run_id[-6:]})")
        views.append(student_view(r, test, num_classes=info.num_classes, device=device,
                                  max_points=max_points, seed=seed))
    labels = test.labels.numpy()
    name = NAMES.get(method, method)
    projections = [project(v.features, method, seed=seed, progress=stages.inner(
        f"students: {name} of {v.label}'s features", PROJECTION_UNITS)) for v in views]
    stages.start("students: per-class deltas and corrected examples")
    ea, eb = views[0].evaluation, views[1].evaluation
    corr = corrected_examples(labels, ea.predictions, eb.predictions)
    names = list(info.class_names)
    out = StudentComparison((views[0].label, views[1].label), (a.run_id, b.run_id), names, projections,
                            [labels[v.indices] for v in views], per_class_delta(ea, eb), corr.fixed,
                            corr.broken, (ea.accuracy, eb.accuracy))
    on, off = views[0].label, views[1].label
    out._grids = {  # two-line titles: the grids are drawn at their pixel size, narrower than a page
        "fixed": examples_grid(test.images, labels, info, corr.fixed, eb.predictions,
                               f"Fixed by {on}: {_images(len(corr.fixed))}<br>right with it, wrong with "
                               f"{off}<br>captions: true→predicted without it", max_images),
        "broken": examples_grid(test.images, labels, info, corr.broken, ea.predictions,
                                f"Broken: {_images(len(corr.broken))}<br>wrong with {on}, right with "
                                f"{off}<br>captions: true→predicted with it", max_images)}
    stages.finish("students: done")
    return out


def students_section(store: RunStore, run_a: Run | str, run_b: Run | str, method: str = "tsne",
                     max_points: int = 1000, **kwargs) -> dict:
    """Figures for one on/off pair: embedding, per_class_delta, fixed and broken image grids."""
    return student_comparison(store, run_a, run_b, method=method, max_points=max_points, **kwargs).figures()
