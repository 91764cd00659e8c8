"""Plotly builders for finished students (the paper's Figures 5 and 6), shared by pages and reports.

A projection is read by attribute (``points``, ``method``: ``kdci_core.diagnostics.projections``)."""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from .style import LAYOUT, colour


def embedding_figure(projections: Sequence, labels: Sequence[np.ndarray],
                     titles: Sequence[str], class_names: Sequence[str]) -> go.Figure:
    """Students' test-image features in 2-D, side by side, coloured by the true class."""
    n = len(projections)
    fig = make_subplots(rows=1, cols=n, subplot_titles=list(titles), horizontal_spacing=0.04)
    for j, (proj, y) in enumerate(zip(projections, labels)):
        y = np.asarray(y)
        for c, name in enumerate(class_names):
            mask = y == c
            fig.add_trace(go.Scattergl(
                x=proj.points[mask, 0], y=proj.points[mask, 1], mode="markers", name=str(name),
                legendgroup=str(name), showlegend=j == 0,
                marker=dict(size=4, color=colour(c), opacity=0.7)), row=1, col=j + 1)
    method = projections[0].method.upper() if projections else ""
    fig.update_layout(**LAYOUT, title=f"Student features on test images ({method}, "
                                      f"{len(labels[0]) if labels else 0} images)",
                      height=450, legend=dict(itemsizing="constant"))
    fig.update_xaxes(showticklabels=False)
    fig.update_yaxes(showticklabels=False)
    return fig


def per_class_figure(accuracies: dict[str, Sequence[float]], class_names: Sequence[str],
                     title: str = "Per-class accuracy") -> go.Figure:
    fig = go.Figure()
    for i, (name, acc) in enumerate(accuracies.items()):
        fig.add_bar(x=list(class_names), y=list(acc), name=name, marker_color=colour(i))
    fig.update_layout(**LAYOUT, title=title, barmode="group", yaxis_title="accuracy (%)")
    return fig


def per_class_delta_figure(delta: np.ndarray, class_names: Sequence[str],
                           title: str = "Per-class accuracy: KDCI minus vanilla") -> go.Figure:
    delta = np.asarray(delta, dtype=float)
    fig = go.Figure(go.Bar(x=list(class_names), y=delta,
                           marker_color=["#2ca02c" if d >= 0 else "#d62728" for d in delta],
                           hovertemplate="%{x}: %{y:+.2f} points<extra></extra>"))
    fig.update_layout(**LAYOUT, title=title, yaxis_title="points")
    return fig


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str = "Confusion matrix") -> go.Figure:
    """Row-normalised confusion (rows: true class) with the counts on hover."""
    c = np.asarray(confusion, dtype=float)
    share = 100 * c / np.maximum(c.sum(1, keepdims=True), 1)
    fig = go.Figure(go.Heatmap(z=share, x=list(class_names), y=list(class_names), colorscale="Blues",
                               customdata=c, colorbar=dict(title="% of row"),
                               hovertemplate="true %{y}, predicted %{x}: %{customdata:.0f} "
                                             "(%{z:.1f}%)<extra></extra>"))
    fig.update_layout(**LAYOUT, title=title, xaxis_title="predicted", yaxis_title="true")
    fig.update_yaxes(autorange="reversed")
    return fig


def predictions_figure(counts: Sequence[int], class_names: Sequence[str], *, threshold: float = 0.8,
                       title: str = "") -> go.Figure:
    """The student's prediction histogram on the test split: share of the test images it assigns
    to each class, the bars above ``threshold`` (a collapsed student) in red, with the line."""
    c = np.asarray(counts, dtype=float)
    share = 100 * c / max(float(c.sum()), 1.0)
    fig = go.Figure(go.Bar(x=[str(n) for n in class_names], y=share, customdata=c,
                           marker_color=["#d62728" if s > 100 * threshold else "#1f77b4" for s in share],
                           hovertemplate="%{x}: %{y:.1f}% of the test images (%{customdata:.0f})<extra></extra>"))
    fig.add_hline(y=100 * threshold, line_dash="dot", line_color="#d62728",
                  annotation_text=f"collapsed above {100 * threshold:.0f}%")
    fig.update_layout(**LAYOUT, title=title or f"Predicted classes on the {int(c.sum()):,} test images",
                      yaxis_title="share of predictions (%)", yaxis_range=[0, 105])
    fig.update_xaxes(type="category")
    return fig
