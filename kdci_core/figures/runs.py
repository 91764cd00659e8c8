"""Plotly builders of training runs: curves of any metric over epoch, step or wall time (with
TensorBoard-style smoothing) and the paired KDCI gain per method.

Plain data in, figure out: a run is a mapping (``Run.series()``), a comparison the one
``kdci_core.reports`` computes; nothing here reads the run store or computes a statistic.
Shared by the run recorder (a run's saved figures), the Runs and Compare pages and the report.
"""

from __future__ import annotations

import math
from typing import Mapping, Sequence

import plotly.graph_objects as go

from ..common.errors import InputError
from .style import LAYOUT, empty_figure

#: KDCI on in blues, off in oranges: one family per setting, one shade per method.
ON_SHADES = ("#1f77b4", "#08519c", "#6baed6", "#3182bd", "#9ecae1")
OFF_SHADES = ("#ff7f0e", "#a63603", "#fdae6b", "#e6550d", "#fdd0a2")
DASHES = ("solid", "dash", "dot", "dashdot", "longdash", "longdashdot")
X_AXES = {"epoch": ("epoch", "epoch"), "step": ("step", "step"), "wall_time": ("wall_time_s", "wall time (s)")}
Y_AXES = {"student_accuracy": "student test accuracy (%)", "loss": "training loss",
          "compensated_accuracy": "compensated test accuracy (%)",
          "kdci_compensation": "KDCI compensation / logit spread",
          "kdci_attention_entropy": "attention entropy / log K'",
          "kdci_prototypes_used": "prototypes in use",
          # system metrics per epoch (common.system)
          "cpu_percent": "process CPU (% of one core)", "rss_mb": "resident memory (MB)",
          "rss_peak_mb": "peak resident memory (MB)", "cuda_allocated_mb": "CUDA memory allocated (MB)",
          "cuda_peak_mb": "CUDA memory peak (MB)"}
#: what an empty curve says instead of drawing empty axes (a queued run, a run before its first epoch)
WAITING = "waiting for the first epoch"
WAITING_STEPS = "waiting for the first logged steps"
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


def short_id(run_id: str) -> str:
    """The last 6 characters of a run id: the random suffix of the ids the store makes."""
    return str(run_id)[-6:]


def short_run_label(config: Mapping, run_id: str) -> str:
    """A label that fits a legend or a chip: "deepinv · KDCI on · seed 1 · 3f2a1c" (method,
    setting, seed, the id's suffix); the full id goes in hovers and tables."""
    kdci = "KDCI on" if config.get("kdci") else "KDCI off"
    return f"{config.get('method')} · {kdci} · seed {config.get('seed')} · {short_id(run_id)}"


#: legends go under the plot, horizontally: a long legend beside it squeezed the plot area
LEGEND_BELOW = dict(orientation="h", yanchor="top", y=-0.22, xanchor="left", x=0.0)


def runs_count(n: int) -> str:
    """"1 run", "3 runs"."""
    return f"{n} run{'' if n == 1 else 's'}"


def _setting_colour(kdci: bool, method_index: int) -> str:
    shades = ON_SHADES if kdci else OFF_SHADES
    return shades[method_index % len(shades)]


def curves_figure(series: Sequence[Mapping], x: str = "epoch", smoothing: float = 0.0,
                  y: str = "student_accuracy") -> go.Figure:
    """One line per run: colour family by KDCI setting, shade by method, dash by seed; the
    legend under the plot with short labels (the full run id in the hover).

    ``series``: one mapping per run with ``run_id``, ``label``, ``config`` and ``history`` (the
    per-epoch records), as ``Run.series()`` gives."""
    if x not in X_AXES:
        raise InputError(f"x: expected one of {', '.join(X_AXES)}, found {x!r}")
    if y not in Y_AXES:
        raise InputError(f"y: expected one of {', '.join(Y_AXES)}, found {y!r}")
    ema([], smoothing)  # validates smoothing even with no runs
    x_key, x_title = X_AXES[x]
    smooth = f", EMA smoothing {float(smoothing):.2f}" if smoothing else ""
    title = f"{Y_AXES[y]} over {x_title} ({runs_count(len(series))}{smooth})"
    if not any(h.get(x_key) is not None and h.get(y) is not None for s in series for h in s["history"]):
        recorded = any(h.get(x_key) is not None for s in series for h in s["history"])
        return empty_figure(title, f"no {Y_AXES[y]} recorded" if recorded else
                            WAITING_STEPS if x == "step" else WAITING)
    configs = [s["config"] for s in series]
    methods = list(dict.fromkeys(c.get("method") for c in configs))
    seeds = sorted({c.get("seed") for c in configs}, key=lambda s: (s is None, s))
    fig = go.Figure()
    last_x = 0.0
    for run, cfg in zip(series, configs):
        hist = [h for h in run["history"] if h.get(x_key) is not None]
        last_x = max([last_x, *(float(h[x_key]) for h in hist)])
        raw = [h.get(y) for h in hist]
        name = short_run_label(cfg, run["run_id"])
        fig.add_scatter(
            x=[h[x_key] for h in hist], y=ema(raw, smoothing), mode="lines+markers", name=name,
            line=dict(color=_setting_colour(bool(cfg.get("kdci")), methods.index(cfg.get("method"))),
                      dash=DASHES[seeds.index(cfg.get("seed")) % len(DASHES)], width=2),
            marker=dict(size=4), customdata=[[v, run["run_id"]] for v in raw],
            hovertemplate=f"{run.get('label', name)}<br>{x_title} %{{x}}: %{{y:.3f}} (raw "
                          "%{customdata[0]:.3f})<br>run %{customdata[1]}<extra></extra>")
    fig.update_layout(**LAYOUT, title=title,
                      xaxis_title=x_title, yaxis_title=Y_AXES[y], legend=LEGEND_BELOW)
    if x == "epoch" and last_x <= 20:
        fig.update_xaxes(dtick=1)  # whole epochs, not 1.2, 1.4, ...
    return fig


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def gain_figure(comparison) -> go.Figure:
    """Mean paired gain per method, error bars one sample std, p-value and positive pairs on top.

    ``comparison``: a :class:`kdci_core.reports.Comparison` (its ``gains``: method, mean, std,
    p_value, positive, n per method)."""
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
