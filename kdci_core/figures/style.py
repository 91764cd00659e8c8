"""The look every figure shares: the plotly template and margins, the categorical palette, and
an empty placeholder that keeps a layout's slot when there is nothing to draw."""

from __future__ import annotations

import plotly.graph_objects as go

PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2",
           "#7f7f7f", "#bcbd22", "#17becf")
LAYOUT = dict(template="plotly_white", margin=dict(l=50, r=20, t=60, b=40))


def colour(i: int) -> str:
    return PALETTE[i % len(PALETTE)]


def empty_figure(title: str, text: str) -> go.Figure:
    """A placeholder with a message (e.g. no corrected examples), so layouts keep their slots."""
    fig = go.Figure()
    fig.add_annotation(text=text, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    fig.update_layout(**LAYOUT, title=title, height=200)
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig
