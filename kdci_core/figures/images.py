"""Images as figures: a mosaic of normalised images, a captioned grid, and a grid of examples.

Images arrive normalised (the dataset's mean/std); ``DatasetInfo.denormalize`` maps them back.
Small images (digits are 8x8) are enlarged by an integer factor, nearest neighbour, and a grid
is drawn at its own pixel size with its captions in a band under each row: scaled to a page's
width, 8 px cells with 9 px captions on top of them could not be read.
"""

from __future__ import annotations

import base64
import io
import math
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from ..data import DatasetInfo
from .style import LAYOUT, empty_figure

#: an image is shown at least this many pixels tall (enlarged by a whole factor, nearest neighbour)
DISPLAY_CELL = 56
#: the band under each row of images that holds their captions (pixels), and its font size
CAPTION_BAND, CAPTION_FONT = 16, 11
_MARGIN = dict(l=10, r=10, t=50, b=10)


def display_scale(height: int, width: int, cell: int = DISPLAY_CELL) -> int:
    """The whole factor that makes an ``height x width`` image at least ``cell`` pixels on its
    short side (1 for images already that large)."""
    return max(1, math.ceil(cell / max(1, min(int(height), int(width)))))


def mosaic(images: torch.Tensor, info: DatasetInfo, columns: int, gap: int = 1, *, scale: int = 1,
           row_gap: int | None = None) -> np.ndarray:
    """Normalised N x C x H x W images as one H' x W' x 3 uint8 picture (rows of ``columns``),
    each image enlarged ``scale`` times (nearest neighbour); ``row_gap`` (default ``gap``) white
    rows under each row of images, e.g. room for captions."""
    x = info.denormalize(images.detach().float().cpu())
    if x.shape[1] == 1:
        x = x.repeat(1, 3, 1, 1)
    if scale > 1:
        x = x.repeat_interleave(scale, dim=2).repeat_interleave(scale, dim=3)
    row_gap = gap if row_gap is None else row_gap
    n, _, h, w = x.shape
    rows = (n + columns - 1) // columns
    canvas = np.ones((rows * (h + row_gap) - (gap if row_gap == gap else 0),
                      columns * (w + gap) - gap, 3), dtype=np.float32)
    for i in range(n):
        r, c = divmod(i, columns)
        canvas[r * (h + row_gap):r * (h + row_gap) + h, c * (w + gap):c * (w + gap) + w] = \
            x[i].permute(1, 2, 0).numpy()
    return (canvas * 255).round().astype(np.uint8)


def png_data_uri(pic: np.ndarray) -> str:
    """An H x W x 3 uint8 picture as a ``data:image/png;base64`` URI (``go.Image(source=...)``)."""
    buf = io.BytesIO()
    Image.fromarray(pic).save(buf, format="PNG", optimize=False)
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def short_caption(text: str, width_px: int) -> str:
    """``text`` cut to what fits ``width_px`` at the caption font (about 0.6 em a character)."""
    fits = max(3, int(width_px / (0.6 * CAPTION_FONT)))
    text = str(text)
    return text if len(text) <= fits else text[:fits - 1] + "…"


def image_grid(images: torch.Tensor, info: DatasetInfo, *, captions: Sequence[str] | None = None,
               columns: int = 16, max_images: int = 128, title: str = "") -> go.Figure:
    """A grid of images, small ones enlarged, with an optional short caption under each image.

    The figure has a fixed pixel size (one picture pixel = one screen pixel): show it with
    ``st.plotly_chart(fig, width="content")`` so it is not stretched or squeezed."""
    images = images[:max_images]
    columns = max(1, min(columns, len(images)))
    scale = display_scale(images.shape[2], images.shape[3])
    gap = 2 if scale > 1 else 1
    band = CAPTION_BAND if captions is not None else gap
    pic = mosaic(images, info, columns, gap, scale=scale, row_gap=band)
    # the picture travels as one PNG (a few KB), not as a nested list of every pixel (MBs)
    fig = go.Figure(go.Image(source=png_data_uri(pic), hoverinfo="skip"))
    cell_h, cell_w = images.shape[2] * scale, images.shape[3] * scale
    if captions is not None:  # one layout update: add_annotation per caption costs seconds
        notes = []
        for i, text in enumerate(list(captions)[:len(images)]):
            r, c = divmod(i, columns)
            notes.append(dict(x=c * (cell_w + gap) + cell_w / 2, y=r * (cell_h + band) + cell_h,
                              text=short_caption(text, cell_w + gap), showarrow=False,
                              xanchor="center", yanchor="top",
                              font=dict(size=CAPTION_FONT, color="#222")))
        fig.update_layout(annotations=notes)
    margin = {**_MARGIN, "t": _MARGIN["t"] + 18 * title.count("<br>")}  # room for each title line
    fig.update_layout(**{**LAYOUT, "margin": margin}, title=dict(text=title, font=dict(size=14)),
                      width=pic.shape[1] + margin["l"] + margin["r"],
                      height=pic.shape[0] + margin["t"] + margin["b"])
    fig.update_xaxes(visible=False, range=[-0.5, pic.shape[1] - 0.5])
    fig.update_yaxes(visible=False, range=[pic.shape[0] - 0.5, -0.5])
    return fig


def captions(labels: np.ndarray, predictions: np.ndarray, indices: np.ndarray,
             class_names: Sequence[str]) -> list[str]:
    """Captions "true→pred" (class names), one per image in ``indices``."""
    return [f"{class_names[int(labels[i])]}→{class_names[int(predictions[i])]}" for i in indices]


def examples_grid(images: torch.Tensor, labels: np.ndarray, info: DatasetInfo, idx: np.ndarray,
                  preds: np.ndarray, title: str, max_images: int) -> go.Figure:
    """The test images at ``idx`` (at most ``max_images``) captioned "true→pred", eight a row."""
    if len(idx) == 0:
        fig = empty_figure(title, "no such test images")
        fig.update_layout(title_font_size=14, margin_t=_MARGIN["t"] + 18 * title.count("<br>"),
                          height=200 + 18 * title.count("<br>"))
        return fig
    shown = idx[:max_images]
    caps = captions(labels, preds, shown, info.class_names)
    return image_grid(images[torch.from_numpy(shown)], info, captions=caps, columns=8,
                      max_images=max_images, title=title)
