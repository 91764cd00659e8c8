"""Plotly figure builders: plain data in, a ``plotly.graph_objects.Figure`` out, nothing computed.

- ``style``: the shared template, palette and an empty placeholder;
- ``images``: mosaics, captioned grids (captions wrap, whole on hover) and a grid by class;
- ``diagnostics``: FID, class proportions, rounds, the dictionary, P(z), the K curve;
- ``students``: students' features side by side, per-class accuracy and deltas, confusion, the
  prediction histogram (a collapsed student);
- ``runs``: training curves (smoothing, x axis; a message while there is no point) and the
  paired KDCI gain;
- ``sweep``: parallel coordinates of the settings runs differ in against their accuracy;
- ``teacher``: the Teacher page's per-class accuracy and confusion matrix.

Imports only ``common`` and ``data`` of the engine, so every layer that draws (the run
recorder, reports, the dashboard) may use it.
"""

from .diagnostics import (dictionary_figure, fid_figure, k_curve_figure, proportions_figure, pz_figure,
                          rounds_figure)
from .images import examples_grid, image_grid, mosaic
from .runs import curves_figure, ema, gain_figure
from .students import confusion_figure, embedding_figure, per_class_delta_figure, per_class_figure
from .style import LAYOUT, PALETTE, colour, empty_figure

__all__ = ["LAYOUT", "PALETTE", "colour", "confusion_figure", "curves_figure", "dictionary_figure",
           "embedding_figure", "ema", "empty_figure", "examples_grid", "fid_figure", "gain_figure",
           "image_grid", "k_curve_figure", "mosaic", "per_class_delta_figure", "per_class_figure",
           "proportions_figure", "pz_figure", "rounds_figure"]
