"""Images as figures: a mosaic of normalised images, a captioned grid, a grid of examples and
a grid with one row per class (a stratified sample, each row with its class's share).

Images arrive normalised (the dataset's mean/std); ``DatasetInfo.denormalize`` maps them back.
Small images (digits are 8x8) are enlarged by an integer factor, nearest neighbour, and a grid
is drawn at its own pixel size with its captions in a band under each row: scaled to a page's
width, 8 px cells with 9 px captions on top of them could not be read. A caption wider than its
cell wraps onto a second line ("Shirt" / "→Bag"); what still does not fit ends in "…", and
every image's whole caption is its hover text.
"""

from __future__ import annotations

import base64
import io
import math
import textwrap
from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch
from PIL import Image

from ..data import DatasetInfo
from .style import LAYOUT, empty_figure

#: an image is shown at least this many pixels tall (enlarged by a whole factor, nearest neighbour)
DISPLAY_CELL = 56
#: the band under each row of images that holds a line of their captions (pixels), its font size
#: and the most lines a caption wraps onto
CAPTION_BAND, CAPTION_FONT, CAPTION_LINES = 16, 11, 2
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


def _fits(width_px: int) -> int:
    """Characters of the caption font that fit ``width_px`` (about 0.6 em a character)."""
    return max(3, int(width_px / (0.6 * CAPTION_FONT)))


def short_caption(text: str, width_px: int) -> str:
    """``text`` cut to what fits ``width_px`` at the caption font."""
    fits, text = _fits(width_px), str(text)
    return text if len(text) <= fits else text[:fits - 1] + "…"


def caption_lines(text: str, width_px: int, max_lines: int = CAPTION_LINES) -> list[str]:
    """``text`` wrapped to ``width_px`` (before an arrow, at spaces and hyphens), on at most
    ``max_lines`` lines, the last cut with "…" when the rest does not fit."""
    fits, text = _fits(width_px), str(text)
    if len(text) <= fits:
        return [text]
    lines = textwrap.wrap(text.replace("→", " →"), fits, break_long_words=True) or [text]
    if len(lines) > max_lines:
        rest = " ".join(lines[max_lines - 1:])
        lines = lines[:max_lines - 1] + [rest[:fits - 1] + "…"]
    return lines


def _figure(pic: np.ndarray, title: str, margin: dict) -> go.Figure:
    """A picture at its own pixel size (one picture pixel = one screen pixel), axes hidden."""
    # the picture travels as one PNG (a few KB), not as a nested list of every pixel (MBs)
    fig = go.Figure(go.Image(source=png_data_uri(pic), hoverinfo="skip"))
    margin = {**margin, "t": margin["t"] + 18 * title.count("<br>")}  # room for each title line
    fig.update_layout(**{**LAYOUT, "margin": margin}, title=dict(text=title, font=dict(size=14)),
                      width=pic.shape[1] + margin["l"] + margin["r"],
                      height=pic.shape[0] + margin["t"] + margin["b"], showlegend=False)
    fig.update_xaxes(visible=False, range=[-0.5, pic.shape[1] - 0.5])
    fig.update_yaxes(visible=False, range=[pic.shape[0] - 0.5, -0.5])
    return fig


def image_grid(images: torch.Tensor, info: DatasetInfo, *, captions: Sequence[str] | None = None,
               columns: int = 16, max_images: int = 128, title: str = "") -> go.Figure:
    """A grid of images, small ones enlarged, with an optional caption under each image (wrapped
    onto two lines when it is wider than its cell; the whole caption on hover).

    The figure has a fixed pixel size (one picture pixel = one screen pixel): show it with
    ``st.plotly_chart(fig, width="content")`` so it is not stretched or squeezed."""
    images = images[:max_images]
    columns = max(1, min(columns, len(images)))
    scale = display_scale(images.shape[2], images.shape[3])
    gap = 2 if scale > 1 else 1
    cell_h, cell_w = images.shape[2] * scale, images.shape[3] * scale
    texts = [str(t) for t in list(captions)[:len(images)]] if captions is not None else None
    wrapped = [caption_lines(t, cell_w + gap) for t in texts] if texts is not None else None
    band = CAPTION_BAND * max([len(w) for w in wrapped] or [1]) if wrapped is not None else gap
    pic = mosaic(images, info, columns, gap, scale=scale, row_gap=band)
    fig = _figure(pic, title, _MARGIN)
    if texts:  # one layout update: add_annotation per caption costs seconds
        notes, xs, ys = [], [], []
        for i, lines in enumerate(wrapped):
            r, c = divmod(i, columns)
            x, y = c * (cell_w + gap) + cell_w / 2, r * (cell_h + band) + cell_h
            notes.append(dict(x=x, y=y, text="<br>".join(lines), showarrow=False, xanchor="center",
                              yanchor="top", font=dict(size=CAPTION_FONT, color="#222")))
            xs.append(x)
            ys.append(y - cell_h / 2)
        fig.update_layout(annotations=notes)
        # an invisible marker over each image carries its whole caption as the hover text
        fig.add_scatter(x=xs, y=ys, mode="markers", hovertext=texts, hoverinfo="text",
                        marker=dict(size=max(cell_w, cell_h), symbol="square", opacity=0))
    return fig


def class_grid(images: torch.Tensor, labels, info: DatasetInfo, *, per_class: int = 8,
               max_classes: int = 20, title: str = "") -> go.Figure:
    """A stratified sample by label: one row per class, up to ``per_class`` of its images
    (spread over all of them, so every round shows), and beside each row the class's count and
    share of all the images ("Shirt: 57% of 2,000"). The ``max_classes`` largest classes are
    shown, in class order; the title says how many are left out."""
    labels = np.asarray(labels).ravel()
    total, names = len(labels), info.class_names
    counts = np.bincount(labels, minlength=len(names)) if total else np.zeros(len(names), dtype=int)
    kept = sorted(np.argsort(-counts, kind="stable")[:max_classes].tolist())
    scale = display_scale(images.shape[2], images.shape[3])
    gap = 2 if scale > 1 else 1
    cell_h, cell_w = images.shape[2] * scale, images.shape[3] * scale
    width = per_class * (cell_w + gap) - gap
    rows, texts = [], []
    for c in kept:
        where = np.flatnonzero(labels == c)
        pick = where[np.unique(np.linspace(0, len(where) - 1, min(per_class, len(where))).round().astype(int))] \
            if len(where) else where
        row = np.full((cell_h, width, 3), 255, dtype=np.uint8)
        if len(pick):
            strip = mosaic(images[torch.from_numpy(pick)], info, len(pick), gap, scale=scale)
            row[:, :strip.shape[1]] = strip
        rows.append(row)
        texts.append(f"{names[c]}: {100 * counts[c] / max(total, 1):.0f}% of {total:,}")
    pic = np.concatenate([np.concatenate([r, np.full((gap * 2, width, 3), 255, np.uint8)]) for r in rows])
    left = int(0.6 * CAPTION_FONT * max([len(t) for t in texts] or [1])) + 20
    left_out = len(names) - len(kept)
    title = title or f"{total:,} images, up to {per_class} per class (rows: teacher pseudo-label)"
    if left_out:
        title += f"<br>{left_out} smaller class(es) not shown"
    fig = _figure(pic, title, {**_MARGIN, "l": left})
    fig.update_layout(annotations=[
        # in the left margin: paper x 0 is the picture's left edge (a data x off the axis's
        # range would hide the annotation)
        dict(x=0, xref="paper", xshift=-8, y=i * (cell_h + 2 * gap) + cell_h / 2, text=t, showarrow=False,
             xanchor="right", yanchor="middle", font=dict(size=CAPTION_FONT + 1, color="#222"))
        for i, t in enumerate(texts)])
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
