"""A sweep at a glance: parallel coordinates of the config fields that differ across runs
against their final accuracy (W&B's sweep view), one line per run.

Plain data in (one mapping of field -> value per run, and the accuracies); numeric fields get a
numeric axis, the others (methods, on/off, presets) one tick per value, in first-seen order,
labelled short (a path by its file name; the Compare page's config table has the whole values).
"""

from __future__ import annotations

import numbers
from typing import Mapping, Sequence

import plotly.graph_objects as go

from .style import LAYOUT, empty_figure

TARGET = "final accuracy (%)"
#: a tick label longer than this is cut (a path shows its file name): parcoords labels overlap
TICK_CHARS = 18


def _tick(text: str) -> str:
    if "/" in text:
        text = text.rstrip("/").rsplit("/", 1)[-1]
    return text if len(text) <= TICK_CHARS else text[:TICK_CHARS - 1] + "…"


def _numeric(values: Sequence) -> bool:
    return all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values)


def _dimension(name: str, values: Sequence) -> dict:
    if _numeric(values):
        return dict(label=name, values=[float(v) for v in values])
    texts = ["" if v is None else str(v) for v in values]
    order = list(dict.fromkeys(texts))
    return dict(label=name, values=[order.index(t) for t in texts], tickvals=list(range(len(order))),
                ticktext=[_tick(t) for t in order], range=[-0.5, len(order) - 0.5] if len(order) == 1 else None)


def parallel_figure(fields: Mapping[str, Sequence], accuracies: Sequence[float], title: str = "") -> go.Figure:
    """One axis per field in ``fields`` ({field: one value per run}) then the accuracy, lines
    coloured by the accuracy; a placeholder when no field differs."""
    n = len(accuracies)
    title = title or f"Sweep: {len(fields)} differing setting(s) vs final accuracy ({n} run{'s' * (n != 1)})"
    if not fields or not n:
        return empty_figure(title, "the chosen runs differ in no setting but the seed")
    dims = [{k: v for k, v in _dimension(name, list(vals)).items() if v is not None}
            for name, vals in fields.items()]
    dims.append(dict(label=TARGET, values=[float(a) for a in accuracies]))
    fig = go.Figure(go.Parcoords(dimensions=dims, line=dict(
        color=[float(a) for a in accuracies], colorscale="Viridis", showscale=True,
        colorbar=dict(title="accuracy %"))))
    fig.update_layout(**{**LAYOUT, "margin": dict(l=80, r=80, t=90, b=40)}, title=title)
    return fig
