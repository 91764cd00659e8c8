"""Images as figures: a mosaic of normalised images, a captioned grid, and a grid of examples.

Images arrive normalised (the dataset's mean/std); ``DatasetInfo.denormalize`` maps them back.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np
import plotly.graph_objects as go
import torch

from ..data import DatasetInfo
from .style import LAYOUT, empty_figure


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


def captions(labels: np.ndarray, predictions: np.ndarray, indices: np.ndarray,
             class_names: Sequence[str]) -> list[str]:
    """Captions "true→pred" (class names), one per image in ``indices``."""
    return [f"{class_names[int(labels[i])]}→{class_names[int(predictions[i])]}" for i in indices]


def examples_grid(images: torch.Tensor, labels: np.ndarray, info: DatasetInfo, idx: np.ndarray,
                  preds: np.ndarray, title: str, max_images: int) -> go.Figure:
    """The test images at ``idx`` (at most ``max_images``) captioned "true→pred", eight a row."""
    if len(idx) == 0:
        return empty_figure(title, "no such test images")
    shown = idx[:max_images]
    caps = captions(labels, preds, shown, info.class_names)
    fig = image_grid(images[torch.from_numpy(shown)], info, captions=caps, columns=8,
                     max_images=max_images, title=title)
    rows = (len(shown) + 7) // 8  # small images: keep cells about 90 px rather than page-wide
    fig.update_layout(height=min(fig.layout.height, 100 + 90 * rows))
    return fig
