"""The Teacher page's figures of a :class:`~kdci_core.teachers.TeacherReport`: per-class accuracy
and the confusion matrix (the report's numbers drawn, nothing computed)."""

from __future__ import annotations

import numpy as np
import plotly.graph_objects as go

ACCENT = "#4F46E5"


def per_class_figure(report) -> go.Figure:
    """Bar chart of per-class test accuracy, class names on the x axis, overall as a dotted line."""
    acc = [None if a != a else a for a in report.per_class]  # NaN (no test samples) -> gap
    fig = go.Figure(go.Bar(x=report.class_names, y=acc, marker_color=ACCENT, name="per class",
                           text=[_pct(a) for a in acc], textposition="inside", textangle=0,
                           insidetextanchor="end", textfont=dict(color="white"),
                           hovertemplate="class %{x}: %{y:.2f}%<extra></extra>"))
    fig.add_hline(y=report.accuracy, line_dash="dot", line_color="#F59E0B", line_width=2)
    fig.update_layout(title="Per-class accuracy", yaxis_title="accuracy (%)",
                      xaxis_title=f"class (dotted line: overall {report.accuracy:.1f}%)",
                      yaxis_range=[0, 100.5], xaxis_type="category",
                      margin=dict(l=10, r=10, t=60, b=10), height=420)
    return fig


def _pct(a) -> str:
    return "n/a" if a is None else (f"{a:.0f}" if a in (0.0, 100.0) else f"{a:.1f}")


def confusion_figure(report) -> go.Figure:
    """Heatmap of the confusion matrix (rows: true class, columns: predicted class)."""
    cm = np.asarray(report.confusion)
    names = report.class_names
    text = [[str(v) if v else "" for v in row] for row in cm.tolist()] if len(names) <= 20 else None
    fig = go.Figure(go.Heatmap(
        z=cm, x=names, y=names, colorscale=[[0, "#FFFFFF"], [1, ACCENT]], text=text,
        texttemplate="%{text}" if text else None,
        hovertemplate="true %{y}, predicted %{x}: %{z}<extra></extra>", colorbar=dict(title="n")))
    fig.update_layout(title="Confusion matrix (rows: true class)",
                      xaxis_title="predicted", yaxis_title="true", yaxis_autorange="reversed",
                      xaxis_type="category", yaxis_type="category",
                      margin=dict(l=10, r=10, t=60, b=10), height=420)
    return fig
