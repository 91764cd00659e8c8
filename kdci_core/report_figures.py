"""Plotly builders and table rows for comparing finished runs (KDCI on vs off across seeds),
and the student views of one on/off pair (features, per-class deltas, corrected examples).

Shared by the Compare page and the exported report (reports.py), so both show the same numbers
the same way.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Sequence

import numpy as np
import plotly.graph_objects as go

from .diagnostics.figures import LAYOUT
from .errors import InputError

if TYPE_CHECKING:  # reports.py imports this module
    from .reports import Comparison
    from .runstore import Run, RunStore

#: KDCI on in blues, off in oranges: one family per setting, one shade per method.
ON_SHADES = ("#1f77b4", "#08519c", "#6baed6", "#3182bd", "#9ecae1")
OFF_SHADES = ("#ff7f0e", "#a63603", "#fdae6b", "#e6550d", "#fdd0a2")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
X_AXES = {"epoch": ("epoch", "epoch"), "step": ("step", "step"), "wall_time": ("wall_time_s", "wall time (s)")}
Y_AXES = {"student_accuracy": "student test accuracy (%)", "loss": "training loss"}
MAX_SMOOTHING = 0.99


def ema(values: Sequence[float | None], smoothing: float) -> list[float | None]:
    """Debiased exponential moving average, as TensorBoard's and W&B's smoothing slider.

    The running value starts at 0 and is divided by ``1 - smoothing**n`` so the first points are
    not pulled towards 0; missing (None/NaN) values are passed through and skipped.
    """
    s = float(smoothing)
    if not 0.0 <= s <= MAX_SMOOTHING:
        raise InputError(f"smoothing: expected a value between 0 and {MAX_SMOOTHING}, found {smoothing!r}")
    out: list[float | None] = []
    last, n = 0.0, 0
    for v in values:
        if v is None or not math.isfinite(float(v)):
            out.append(None)
            continue
        last = last * s + (1.0 - s) * float(v)
        n += 1
        out.append(last / (1.0 - s ** n))
    return out


def _setting_colour(kdci: bool, method_index: int) -> str:
    shades = ON_SHADES if kdci else OFF_SHADES
    return shades[method_index % len(shades)]


def run_history(run: Run) -> list[dict]:
    """Per-epoch records: metrics.jsonl, or the result's history when that file is missing."""
    return run.metrics() or list((run.result() or {}).get("history") or [])


def curves_figure(runs: Sequence[Run], x: str = "epoch", smoothing: float = 0.0,
                  y: str = "student_accuracy") -> go.Figure:
    """One line per run: colour family by KDCI setting, shade by method, dash by seed."""
    from .diagnostics.students import run_label

    if x not in X_AXES:
        raise InputError(f"x: expected one of {', '.join(X_AXES)}, found {x!r}")
    if y not in Y_AXES:
        raise InputError(f"y: expected one of {', '.join(Y_AXES)}, found {y!r}")
    ema([], smoothing)  # validates smoothing even with no runs
    x_key, x_title = X_AXES[x]
    configs = [r.config() for r in runs]
    methods = list(dict.fromkeys(c.get("method") for c in configs))
    seeds = sorted({c.get("seed") for c in configs}, key=lambda s: (s is None, s))
    labels = [run_label(r) for r in runs]
    fig = go.Figure()
    last_x = 0.0
    for run, cfg, label in zip(runs, configs, labels):
        hist = [h for h in run_history(run) if h.get(x_key) is not None]
        last_x = max([last_x, *(float(h[x_key]) for h in hist)])
        raw = [h.get(y) for h in hist]
        name = label if labels.count(label) == 1 else f"{label} · {run.run_id}"
        fig.add_scatter(
            x=[h[x_key] for h in hist], y=ema(raw, smoothing), mode="lines+markers", name=name,
            line=dict(color=_setting_colour(bool(cfg.get("kdci")), methods.index(cfg.get("method"))),
                      dash=DASHES[seeds.index(cfg.get("seed")) % len(DASHES)], width=2),
            marker=dict(size=4), customdata=[[v, run.run_id] for v in raw],
            hovertemplate=f"{name}<br>{x_title} %{{x}}: %{{y:.3f}} (raw %{{customdata[0]:.3f}})"
                          "<br>%{customdata[1]}<extra></extra>")
    smooth = f", EMA smoothing {float(smoothing):.2f}" if smoothing else ""
    fig.update_layout(**LAYOUT, title=f"{Y_AXES[y]} over {x_title} ({len(runs)} runs{smooth})",
                      xaxis_title=x_title, yaxis_title=Y_AXES[y], legend=dict(orientation="v"))
    if x == "epoch" and last_x <= 20:
        fig.update_xaxes(dtick=1)  # whole epochs, not 1.2, 1.4, ...
    return fig


def _pm(mean: float | None, std: float | None, digits: int = 2, sign: bool = False) -> str:
    if mean is None:
        return "n/a"
    m = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return m if std is None else f"{m} ± {std:.{digits}f}"


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def accuracy_table(comparison: Comparison) -> list[dict]:
    """Rows of final student accuracy per method and KDCI setting (mean ± sample std over seeds)."""
    return [{"method": g.method, "KDCI": "on" if g.kdci else "off", "seeds": g.n,
             "accuracy (%)": _pm(g.mean, g.std), "mean": g.mean, "std": g.std,
             "runs": ", ".join(g.run_ids)} for g in comparison.groups]


def gain_table(comparison: Comparison) -> list[dict]:
    """Rows of the paired KDCI gain per method, with the paired t-test across seeds."""
    return [{"method": m.method, "pairs": m.n, "gain (points)": _pm(m.mean, m.std, sign=True),
             "p-value (paired t)": _fmt(m.p_value, ".3g"), "positive pairs": f"{m.positive}/{m.n}",
             "wall time on/off": _fmt(m.wall_time_ratio, ".2f") + ("×" if m.wall_time_ratio else ""),
             "peak memory on/off": _fmt(m.peak_memory_ratio, ".2f") + ("×" if m.peak_memory_ratio else "")}
            for m in comparison.gains.values()]


def pairs_table(comparison: Comparison) -> list[dict]:
    return [{"method": p.method, "seed": p.seed, "KDCI on": f"{p.on_accuracy:.2f}",
             "KDCI off": f"{p.off_accuracy:.2f}", "gain": f"{p.gain:+.2f}", "on run": p.on_id,
             "off run": p.off_id} for m in comparison.gains.values() for p in m.pairs]


def gain_figure(comparison: Comparison) -> go.Figure:
    """Mean paired gain per method, error bars one sample std, p-value and positive pairs on top."""
    gains = list(comparison.gains.values())
    fig = go.Figure(go.Bar(
        x=[m.method for m in gains], y=[m.mean for m in gains],
        error_y=dict(type="data", array=[m.std or 0.0 for m in gains], visible=True),
        marker_color=["#2ca02c" if (m.mean or 0) >= 0 else "#d62728" for m in gains],
        width=0.5 if len(gains) < 3 else None,
        hovertemplate="%{x}: %{y:+.2f} points<extra></extra>"))
    fig.add_hline(y=0, line_color="#7f7f7f")
    fig.update_xaxes(tickvals=[m.method for m in gains],  # the test's outcome under each method
                     ticktext=[f"{m.method}<br>p={_fmt(m.p_value, '.3g')}, {m.positive}/{m.n} positive"
                               for m in gains])
    fig.update_layout(**LAYOUT, title="KDCI gain: on − off, paired by seed (mean ± std)",
                      yaxis_title="points of student accuracy")
    return fig


def empty_figure(title: str, text: str) -> go.Figure:
    """A placeholder with a message (e.g. no corrected examples), so layouts keep their slots."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_layout(**LAYOUT, title=title, height=200)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def captions(labels: np.ndarray, predictions: np.ndarray, indices: np.ndarray,
             class_names: Sequence[str]) -> list[str]:
    """Captions "true→pred" (class names), one per image in ``indices``."""
    return [f"{class_names[int(labels[i])]}→{class_names[int(predictions[i])]}" for i in indices]


# --- students ------------------------------------------------------------------------------
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
        from .diagnostics.student_figures import embedding_figure, per_class_delta_figure

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


def _grid(test, info, idx: np.ndarray, preds: np.ndarray, title: str, max_images: int):
    import torch

    from .diagnostics.figures import image_grid

    if len(idx) == 0:
        return empty_figure(title, "no such test images")
    shown = idx[:max_images]
    caps = captions(test.labels.numpy(), preds, shown, info.class_names)
    fig = image_grid(test.images[torch.from_numpy(shown)], info, captions=caps, columns=8,
                     max_images=max_images, title=title)
    rows = (len(shown) + 7) // 8  # small images: keep cells about 90 px rather than page-wide
    fig.update_layout(height=min(fig.layout.height, 100 + 90 * rows))
    return fig


def student_comparison(store: RunStore, run_a: Run | str, run_b: Run | str, *, method: str = "tsne",
                       max_points: int = 1000, max_images: int = 32, device="cpu",
                       seed: int = 0) -> StudentComparison:
    """``run_a`` (KDCI on) and ``run_b`` (off) on their shared test split: features, deltas, corrections."""
    from .data import load_dataset
    from .diagnostics.projections import project
    from .diagnostics.students import corrected_examples, per_class_delta, student_view

    ids = [r if isinstance(r, str) else r.run_id for r in (run_a, run_b)]
    if ids[0] == ids[1]:
        raise InputError(f"students: expected two different runs, found {ids[0]} twice")
    from .reports import load_finished

    a, b = load_finished(store, ids)
    ca, cb = a.config(), b.config()
    if (ca.get("dataset"), ca.get("data_root")) != (cb.get("dataset"), cb.get("data_root")):
        raise InputError(f"students: runs {a.run_id} and {b.run_id} were scored on different datasets "
                         f"({ca.get('dataset')} and {cb.get('dataset')})")
    data = load_dataset(ca["dataset"], ca.get("data_root"))
    info, test = data.info, data.test
    views = [student_view(r, test, num_classes=info.num_classes, device=device, max_points=max_points,
                          seed=seed) for r in (a, b)]
    labels = test.labels.numpy()
    projections = [project(v.features, method, seed=seed) for v in views]
    ea, eb = views[0].evaluation, views[1].evaluation
    corr = corrected_examples(labels, ea.predictions, eb.predictions)
    names = list(info.class_names)
    out = StudentComparison((views[0].label, views[1].label), (a.run_id, b.run_id), names, projections,
                            [labels[v.indices] for v in views], per_class_delta(ea, eb), corr.fixed,
                            corr.broken, (ea.accuracy, eb.accuracy))
    out._grids = {
        "fixed": _grid(test, info, corr.fixed, eb.predictions, f"Fixed by {views[0].label}: right with it, "
                       f"wrong with {views[1].label} ({_images(len(corr.fixed))}; caption true→pred without)",
                       max_images),
        "broken": _grid(test, info, corr.broken, ea.predictions, f"Broken: wrong with {views[0].label}, right "
                        f"with {views[1].label} ({_images(len(corr.broken))}; caption true→pred with)",
                        max_images)}
    return out


def students_section(store: RunStore, run_a: Run | str, run_b: Run | str, method: str = "tsne",
                     max_points: int = 1000, **kwargs) -> dict:
    """Figures for one on/off pair: embedding, per_class_delta, fixed and broken image grids."""
    return student_comparison(store, run_a, run_b, method=method, max_points=max_points, **kwargs).figures()
