"""Plotly figure builders for the shift diagnostics, shared by the pages and the reports.

Each builder takes plain results (arrays, FIDResult, KCurve, Projection) and returns a
``plotly.graph_objects.Figure``; nothing here computes a metric. Titles carry what a reader
needs to trust the number: the feature extractor and sample counts, the projection method.
"""

from __future__ import annotations

from typing import Mapping, Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from ..data import DatasetInfo
from .fid import FIDResult
from .kcurve import KCurve
from .projections import Projection
from .proportions import imbalance

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=60, b=40))


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def mosaic(images: torch.Tensor, info: DatasetInfo, columns: int, gap: int = 1) -> np.ndarray:
    """Normalised N x C x H x W images as one H' x W' x 3 uint8 picture (rows of ``columns``)."""
    x = info.denormalize(images.detach().float().cpu())
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    n, _, h, w = x.shape
    rows = (n + columns - 1) // columns
    canvas = np.ones((rows * (h + gap) - gap, columns * (w + gap) - gap, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[r * (h + gap):r * (h + gap) + h, c * (w + gap):c * (w + gap) + w] = \
            x[i].permute(1, 2, 0).numpy()
    return (canvas * 255).round().astype(np.uint8)


def image_grid(images: torch.Tensor, info: DatasetInfo, *, captions: Sequence[str] | None = None,
               columns: int = 16, max_images: int = 128, title: str = "") -> go.Figure:
    """A grid of images with an optional short caption per image (shown when <= 64 images)."""
    images = images[:max_images]
    columns = max(1, min(columns, len(images)))
    pic = mosaic(images, info, columns)
    fig = go.Figure(go.Image(z=pic, hoverinfo="skip"))
    h, w = images.shape[2] + 1, images.shape[3] + 1
    if captions is not None and len(images) <= 64:
        for i, text in enumerate(list(captions)[:len(images)]):
            r, c = divmod(i, columns)
            fig.add_annotation(x=c * w, y=r * h, text=str(text), showarrow=False, xanchor="left",
                               yanchor="top", font=dict(size=9, color="#d62728"),
                               bgcolor="rgba(255,255,255,0.6)")
    scale = max(1, 640 // max(1, pic.shape[1]))
    fig.update_layout(**LAYOUT, title=title, height=min(900, pic.shape[0] * scale + 80))
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _imbalance_text(p: np.ndarray) -> str:
    imb = imbalance(p)
    ratio = "inf" if imb.max_min_ratio == float("inf") else f"{imb.max_min_ratio:.1f}"
    return f"H/log C {imb.normalised_entropy:.2f}, KL {imb.kl_to_uniform:.2f}, max/min {ratio}"


def proportions_figure(substitution: np.ndarray, original: np.ndarray, class_names: Sequence[str], *,
                       substitution_label: str = "substitution (teacher pseudo-labels)",
                       original_label: str = "original test split", title: str = "") -> go.Figure:
    """Class shares of the substitution data next to the original's, with imbalance figures."""
    fig = go.Figure()
    for p, name, c in ((original, original_label, "#7f7f7f"), (substitution, substitution_label, "#1f77b4")):
        fig.add_bar(x=list(class_names), y=100 * np.asarray(p), name=f"{name}: {_imbalance_text(p)}",
                    marker_color=c)
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


def fid_figure(results: Mapping[str, FIDResult], title: str = "") -> go.Figure:
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


def dictionary_figure(projection: Projection, clusters: np.ndarray, proportions: np.ndarray,
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


def k_curve_figure(curve: KCurve, defaults: Mapping[str, int] | None = None, title: str = "") -> go.Figure:
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
                      xaxis=dict(title="K", type="log"), yaxis=dict(title="inertia"),
                      yaxis2=dict(title="silhouette", overlaying="y", side="right"),
                      legend=dict(orientation="h", y=-0.2))
    return fig
