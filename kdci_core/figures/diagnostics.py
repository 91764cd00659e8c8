"""Plotly figure builders for the shift diagnostics, shared by the pages and the reports.

Each builder takes plain results (arrays, and the diagnostics' result objects: ``FIDResult``,
``KCurve``, ``Projection``, ``Imbalance``, read by attribute) and returns a
``plotly.graph_objects.Figure``; nothing here computes a metric. Titles carry what a reader
needs to trust the number: the feature extractor and sample counts, the projection method.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go

from .style import LAYOUT, colour


def _imbalance_text(imb) -> str:
    ratio = "inf" if imb.max_min_ratio == float("inf") else f"{imb.max_min_ratio:.1f}"
    return f"H/log C {imb.normalised_entropy:.2f}, KL {imb.kl_to_uniform:.2f}, max/min {ratio}"


def proportions_figure(substitution: np.ndarray, original: np.ndarray, class_names: Sequence[str], *,
                       substitution_imbalance=None, original_imbalance=None,
                       substitution_label: str = "substitution (teacher pseudo-labels)",
                       original_label: str = "original test split", title: str = "") -> go.Figure:
    """Class shares of the substitution data next to the original's; each legend entry carries
    its imbalance figures when given (``Imbalance`` of :mod:`kdci_core.diagnostics.proportions`)."""
    fig = go.Figure()
    for p, imb, name, c in ((original, original_imbalance, original_label, "#7f7f7f"),
                            (substitution, substitution_imbalance, substitution_label, "#1f77b4")):
        fig.add_bar(x=list(class_names), y=100 * np.asarray(p),
                    name=f"{name}: {_imbalance_text(imb)}" if imb is not None else name, marker_color=c)
    fig.update_layout(**LAYOUT, title=title or "Class proportions", barmode="group",
                      yaxis_title="share of images (%)",
                      legend=dict(orientation="h", y=-0.25))
    return fig


def rounds_figure(by_round: Sequence[np.ndarray], class_names: Sequence[str], title: str = "") -> go.Figure:
    """Class shares per synthesis round (generation methods): does the skew drift?"""
    z = 100 * np.stack([np.asarray(p) for p in by_round])
    fig = go.Figure(go.Heatmap(z=z, x=list(class_names), y=[f"round {i + 1}" for i in range(len(z))],
                               colorscale="Blues", colorbar=dict(title="%"),
                               hovertemplate="%{y}, %{x}: %{z:.1f}%<extra></extra>"))
    fig.update_layout(**LAYOUT, title=title or "Class proportions per synthesis round")
    fig.update_yaxes(autorange="reversed")
    return fig


def fid_figure(results: Mapping, title: str = "") -> go.Figure:
    """FID per method; the title names the extractor(s) and the sample counts."""
    names = list(results)
    fig = go.Figure(go.Bar(x=names, y=[results[n].value for n in names], marker_color="#1f77b4",
                           text=[f"{results[n].value:.1f}" for n in names], textposition="outside",
                           hovertext=[results[n].label() for n in names]))
    extractors = sorted({r.extractor_name for r in results.values()})
    counts = sorted({f"{r.n_substitution} vs {r.n_reference}" for r in results.values()})
    fig.update_layout(**LAYOUT, yaxis_title="FID (lower = closer to the test split)",
                      title=title or f"FID on {', '.join(extractors)}<br><sup>samples: "
                                     f"{', '.join(counts)}</sup>")
    warnings = [f"{n}: {r.warning}" for n, r in results.items() if r.warning]
    if warnings:
        fig.add_annotation(text="warning: " + "; ".join(warnings)[:200], xref="paper", yref="paper",
                           x=0, y=1.0, showarrow=False, font=dict(color="#d62728", size=10))
    return fig


def dictionary_figure(projection, clusters: np.ndarray, proportions: np.ndarray,
                      title: str = "") -> go.Figure:
    """Teacher logits of the substitution data in 2-D coloured by cluster; prototypes as crosses
    sized by P(z)."""
    clusters = np.asarray(clusters)
    pts = projection.points
    fig = go.Figure(go.Scattergl(
        x=pts[:, 0], y=pts[:, 1], mode="markers", name="samples",
        marker=dict(size=5, color=[colour(int(c)) for c in clusters], opacity=0.6),
        customdata=clusters, hovertemplate="cluster %{customdata}<extra></extra>"))
    if projection.extra is not None:
        p = np.asarray(proportions)
        size = 6 + 12 * np.sqrt(p / max(float(p.max()), 1e-12))
        fig.add_trace(go.Scatter(
            x=projection.extra[:, 0], y=projection.extra[:, 1], mode="markers", name="prototypes",
            marker=dict(symbol="x-thin", size=size, color="black", line=dict(width=2, color="black")),
            customdata=np.stack([np.arange(len(p)), 100 * p], 1),
            hovertemplate="prototype %{customdata[0]}: P(z) %{customdata[1]:.1f}%<extra></extra>"))
    fig.update_layout(**LAYOUT, title=title or f"Confounder dictionary ({projection.method.upper()}, "
                                               f"{len(pts)} samples, K'={len(proportions)})")
    return fig


def pz_figure(proportions: np.ndarray, title: str = "") -> go.Figure:
    """P(z) per prototype, largest first, against the uniform 1/K'."""
    p = np.asarray(proportions, dtype=float)
    order = np.argsort(-p, kind="stable")
    fig = go.Figure(go.Bar(x=[str(i) for i in order], y=100 * p[order], marker_color="#1f77b4",
                           hovertemplate="prototype %{x}: %{y:.2f}%<extra></extra>"))
    fig.add_hline(y=100 / len(p), line_dash="dot", annotation_text="uniform 1/K'")
    fig.update_layout(**LAYOUT, title=title or f"Proportions P(z) of the {len(p)} prototypes",
                      xaxis_title="prototype (sorted)", yaxis_title="P(z) (%)")
    fig.update_xaxes(type="category", showticklabels=len(p) <= 40)
    return fig


def _k_line(fig: go.Figure, k: int, text: str, color: str, dash: str, y: float) -> None:
    fig.add_shape(type="line", x0=k, x1=k, y0=0, y1=1, xref="x", yref="paper",
                  line=dict(color=color, dash=dash))
    fig.add_annotation(x=float(np.log10(k)), y=y, xref="x", yref="paper", text=text, showarrow=False,
                       xanchor="left", font=dict(color=color, size=11))


#: ticks of a K axis with many K values: 1, 2, 5 per decade
_TICKS_125 = [m * 10 ** e for e in range(0, 6) for m in (1, 2, 5)]
#: up to this many K values, each K tried gets its own tick
MAX_K_TICKS = 12


def k_ticks(ks) -> list[int]:
    """The K axis's ticks: every K tried (a handful), else 1, 2, 5, 10, 20, 50, ... in range.
    Plotly's own log ticks ("2 3 4 ... 10 2 3 ... 100") left a "default 32" line beside a "3"."""
    ks = sorted({int(k) for k in ks})
    if len(ks) <= MAX_K_TICKS:
        return ks
    return [t for t in _TICKS_125 if ks[0] <= t <= ks[-1]]


def k_curve_figure(curve, defaults: Mapping[str, int] | None = None, title: str = "") -> go.Figure:
    """Inertia (left) and silhouette (right) over K, the recommended K, and the paper's defaults."""
    fig = go.Figure()
    fig.add_scatter(x=curve.ks, y=curve.inertia, mode="lines+markers", name="inertia")
    sil = [np.nan if s is None else s for s in curve.silhouette]
    fig.add_scatter(x=curve.ks, y=sil, mode="lines+markers", name="silhouette", yaxis="y2",
                    line=dict(dash="dash"))
    # x is a log axis: plotly.js places shapes there in data units, annotations in log10 units
    _k_line(fig, curve.recommended_k, f"recommended K={curve.recommended_k}", "#2ca02c", "solid", 1.0)
    for method, k in (defaults or {}).items():
        if curve.ks[0] <= k <= curve.ks[-1]:
            _k_line(fig, k, f"{method} default {k}", "#7f7f7f", "dot", 0.05)
    fig.update_layout(**LAYOUT, title=title or f"K curve ({curve.n_samples} samples)",
                      xaxis=dict(title="K", type="log", tickmode="array", tickvals=k_ticks(curve.ks),
                                 ticktext=[str(t) for t in k_ticks(curve.ks)]),
                      yaxis=dict(title="inertia"),
                      yaxis2=dict(title="silhouette", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.2))
    return fig
