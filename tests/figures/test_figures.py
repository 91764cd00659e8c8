"""The figure builders return plotly figures with the traces a reader expects (types, counts,
values), on small hand-made inputs."""

from __future__ import annotations

import base64
import io

import numpy as np
import plotly.graph_objects as go
import pytest
import torch
from PIL import Image as PILImage

from kdci_core.data import load_dataset
from kdci_core.diagnostics.fid import FIDResult
from kdci_core.diagnostics.proportions import imbalance
from kdci_core.figures.diagnostics import (dictionary_figure, fid_figure, k_curve_figure, proportions_figure,
                                           pz_figure, rounds_figure)
from kdci_core.figures.images import CAPTION_BAND, display_scale, image_grid, mosaic
from kdci_core.kdci.kcurve import KCurve
from kdci_core.diagnostics.projections import Projection
from kdci_core.figures.students import (confusion_figure, embedding_figure, per_class_delta_figure,
                                        per_class_figure)

NAMES = [str(i) for i in range(10)]


@pytest.fixture(scope="module")
def digits():
    return load_dataset("digits")


def test_mosaic_tiles_images(digits):
    imgs = digits.test.images[:5]
    pic = mosaic(imgs, digits.info, columns=3)
    assert pic.shape == (2 * 8 + 1, 3 * 8 + 2, 3) and pic.dtype == np.uint8
    first = digits.info.denormalize(imgs[:1])[0, 0].numpy()
    np.testing.assert_allclose(pic[:8, :8, 0] / 255, first, atol=1 / 255)
    assert (pic[8, :, :] == 255).all()  # the white gap between rows


def _picture(fig) -> np.ndarray:
    """The pixels of an image grid (sent as a PNG data URI)."""
    head, data = fig.data[0].source.split(",", 1)
    assert head == "data:image/png;base64"
    return np.asarray(PILImage.open(io.BytesIO(base64.b64decode(data))).convert("RGB"))


def test_image_grid(digits):
    fig = image_grid(digits.test.images[:20], digits.info, captions=["x"] * 20, columns=10)
    assert isinstance(fig, go.Figure) and [t.type for t in fig.data] == ["image"]
    assert len(fig.layout.annotations) == 20
    big = image_grid(digits.test.images[:200], digits.info, max_images=128)
    assert _picture(big).shape[0] == 8 * (56 + 2) - 2  # 128 images in rows of 16, 8 px -> 56 px
    # the picture travels as one PNG: what the browser downloads stays small
    assert len(big.to_json()) < 200_000


def test_small_images_are_enlarged_nearest_neighbour_with_legible_captions(digits):
    """8x8 digits: each pixel becomes a 7x7 block (no blur), the figure keeps its pixel size and
    the captions sit in a band under the images, cut to what fits a cell."""
    assert display_scale(8, 8) == 7 and display_scale(28, 28) == 2 and display_scale(64, 64) == 1
    imgs = digits.test.images[:3]
    names = ["zero", "a very long class name", "2"]
    fig = image_grid(imgs, digits.info, captions=names, columns=3)
    pic = _picture(fig)
    assert pic.shape == (56 + CAPTION_BAND, 3 * 56 + 2 * 2, 3)
    raw = mosaic(imgs[:1], digits.info, columns=1)
    np.testing.assert_array_equal(pic[:56, :56], np.kron(raw, np.ones((7, 7, 1), dtype=np.uint8)))
    assert (pic[56:, :] == 255).all()  # the caption band is white
    assert fig.layout.width == pic.shape[1] + 20 and fig.layout.height > pic.shape[0]
    notes = fig.layout.annotations
    assert [a.text for a in notes][0::2] == ["zero", "2"] and notes[1].text.endswith("…")
    assert all(a.font.size >= 11 and a.yanchor == "top" and a.y == 56 for a in notes)
    assert notes[1].x == 58 + 28  # centred under the second image


def test_proportions_figure_two_bar_series():
    sub, orig = np.array([0.5, 0.5, 0.0]), np.full(3, 1 / 3)
    fig = proportions_figure(sub, orig, ["a", "b", "c"], substitution_imbalance=imbalance(sub),
                             original_imbalance=imbalance(orig))
    assert [t.type for t in fig.data] == ["bar", "bar"]
    np.testing.assert_allclose(fig.data[1].y, [50, 50, 0])
    assert "max/min inf" in fig.data[1].name and "max/min 1.0" in fig.data[0].name
    plain = proportions_figure(sub, orig, ["a", "b", "c"])  # no figures given: the labels alone
    assert [t.name for t in plain.data] == ["original test split", "substitution (teacher pseudo-labels)"]


def test_rounds_figure_heatmap_shape():
    fig = rounds_figure([np.full(10, 0.1)] * 3, NAMES)
    assert fig.data[0].type == "heatmap" and np.asarray(fig.data[0].z).shape == (3, 10)


def test_fid_figure_names_extractor_and_warns():
    r = FIDResult(12.5, "teacher", "teacher penultimate features (lenet5, 84-d)", 84, 64, 360,
                  warning="few samples")
    fig = fid_figure({"deepinv": r, "dafl": FIDResult(30.0, "teacher", r.extractor_name, 84, 128, 360)})
    assert list(fig.data[0].x) == ["deepinv", "dafl"] and list(fig.data[0].y) == [12.5, 30.0]
    assert "teacher penultimate" in fig.layout.title.text and "64 vs 360" in fig.layout.title.text
    assert any("few samples" in a.text for a in fig.layout.annotations)


def test_dictionary_figure_marks_prototypes():
    rng = np.random.default_rng(0)
    proj = Projection(points=rng.normal(size=(50, 2)), extra=rng.normal(size=(4, 2)), method="tsne",
                      seconds=0.1, cached=False)
    fig = dictionary_figure(proj, rng.integers(0, 4, 50), np.array([0.4, 0.3, 0.2, 0.1]))
    samples, protos = fig.data
    assert len(samples.x) == 50 and len(protos.x) == 4 and protos.marker.symbol == "x-thin"
    assert protos.marker.size[0] > protos.marker.size[-1]  # sized by P(z)
    assert "TSNE" in fig.layout.title.text


def test_pz_figure_sorted_with_uniform_line():
    fig = pz_figure(np.array([0.1, 0.6, 0.3]))
    assert list(fig.data[0].x) == ["1", "2", "0"]
    np.testing.assert_allclose(fig.data[0].y, [60, 30, 10])
    assert fig.layout.shapes[0].y0 == pytest.approx(100 / 3)


def test_k_curve_figure():
    curve = KCurve(ks=[2, 4, 8, 16], inertia=[10.0, 4.0, 3.0, 2.5], silhouette=[0.5, 0.6, 0.4, None],
                   recommended_k=4, rule="elbow", pca_components=3, n_samples=100)
    fig = k_curve_figure(curve, {"deepinv": 8, "dfnd": 128})
    assert [t.name for t in fig.data] == ["inertia", "silhouette"]
    assert np.isnan(fig.data[1].y[-1])
    xs = sorted(s.x0 for s in fig.layout.shapes)  # shapes in data units on the log axis
    assert sorted(round(10 ** a.x, 6) for a in fig.layout.annotations) == [4, 8]  # log10 units
    assert xs == [4, 8]  # the recommendation and the in-range default only
    assert fig.layout.xaxis.type == "log"


def test_student_figures():
    rng = np.random.default_rng(1)
    projs = [Projection(rng.normal(size=(30, 2)), None, "umap", 0.0, True) for _ in range(2)]
    labels = [rng.integers(0, 3, 30)] * 2
    fig = embedding_figure(projs, labels, ["vanilla", "KDCI"], ["a", "b", "c"])
    assert len(fig.data) == 6 and sum(t.showlegend for t in fig.data) == 3
    assert sum(len(t.x) for t in fig.data) == 60
    d = per_class_delta_figure(np.array([1.0, -2.0]), ["a", "b"])
    assert list(d.data[0].marker.color) == ["#2ca02c", "#d62728"]
    assert len(per_class_figure({"a": [1, 2], "b": [3, 4]}, ["x", "y"]).data) == 2
    conf = confusion_figure(np.array([[3, 1], [0, 4]]), ["a", "b"])
    np.testing.assert_allclose(conf.data[0].z, [[75, 25], [0, 100]])


def test_image_grid_handles_rgb():
    from kdci_core.data import DatasetInfo
    info = DatasetInfo("rgb", 2, 3, 4, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5), ("a", "b"))
    fig = image_grid(torch.zeros(3, 3, 4, 4), info)
    assert _picture(fig).shape == (56, 3 * 56 + 2 * 2, 3)  # 4 px images, 14 times larger
