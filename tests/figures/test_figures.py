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
from kdci_core.figures.diagnostics import (dictionary_figure, fid_figure, k_curve_figure, k_ticks,
                                           proportions_figure, pz_figure, rounds_figure)
from kdci_core.figures.images import CAPTION_BAND, CAPTION_LINES, caption_lines, class_grid, display_scale, image_grid, mosaic
from kdci_core.figures.runs import curves_figure
from kdci_core.figures.sweep import parallel_figure
from kdci_core.kdci.kcurve import KCurve
from kdci_core.diagnostics.projections import Projection
from kdci_core.figures.students import (confusion_figure, embedding_figure, per_class_delta_figure,
                                        per_class_figure, predictions_figure)

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
    # the picture, and an invisible marker per image that carries its whole caption on hover
    assert isinstance(fig, go.Figure) and [t.type for t in fig.data] == ["image", "scatter"]
    assert len(fig.layout.annotations) == 20 and list(fig.data[1].hovertext) == ["x"] * 20
    big = image_grid(digits.test.images[:200], digits.info, max_images=128)
    assert _picture(big).shape[0] == 8 * (56 + 2) - 2  # 128 images in rows of 16, 8 px -> 56 px
    # the picture travels as one PNG: what the browser downloads stays small
    assert len(big.to_json()) < 200_000


def test_small_images_are_enlarged_nearest_neighbour_with_legible_captions(digits):
    """8x8 digits: each pixel becomes a 7x7 block (no blur), the figure keeps its pixel size and
    the captions sit in a band under the images: a long one wraps onto a second line and what
    still does not fit ends in "…"; the whole caption is the image's hover text."""
    assert display_scale(8, 8) == 7 and display_scale(28, 28) == 2 and display_scale(64, 64) == 1
    imgs = digits.test.images[:3]
    names = ["zero", "a very long class name", "2"]
    fig = image_grid(imgs, digits.info, captions=names, columns=3)
    pic = _picture(fig)
    assert pic.shape == (56 + 2 * CAPTION_BAND, 3 * 56 + 2 * 2, 3)  # a band of two caption lines
    assert list(fig.data[1].hovertext) == names
    raw = mosaic(imgs[:1], digits.info, columns=1)
    np.testing.assert_array_equal(pic[:56, :56], np.kron(raw, np.ones((7, 7, 1), dtype=np.uint8)))
    assert (pic[56:, :] == 255).all()  # the caption band is white
    assert fig.layout.width == pic.shape[1] + 20 and fig.layout.height > pic.shape[0]
    notes = fig.layout.annotations
    assert [a.text for a in notes][0::2] == ["zero", "2"] and notes[1].text == "a very<br>long cl…"
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


def test_a_corrected_example_caption_wraps_instead_of_being_cut(digits):
    """"Shirt→Bag" under a 56 px Fashion-MNIST cell was shown as "Shirt→B…": it wraps at the
    arrow onto two lines, both whole; one line stays one line."""
    fig = image_grid(digits.test.images[:2], digits.info, captions=["Shirt→Bag", "1→7"], columns=2)
    assert [a.text for a in fig.layout.annotations] == ["Shirt<br>→Bag", "1→7"]
    assert caption_lines("T-shirt/top→Ankle boot", 58)[-1].endswith("…")  # 3 lines of text: cut, hover whole
    assert len(caption_lines("T-shirt/top→Ankle boot", 58)) == CAPTION_LINES


def test_class_grid_is_a_stratified_sample_with_each_class_share(digits):
    """The substitution grid: one row per pseudo-label, up to 8 images of it spread over all of
    them, and beside each row its share of all the images ("3: 86% of 360")."""
    labels = digits.test.labels.numpy().copy()
    labels[:300] = 3  # one class dominates, as in a skewed substitution set
    fig = class_grid(digits.test.images, labels, digits.info, per_class=8)
    texts = [a.text for a in fig.layout.annotations]
    counts = np.bincount(labels, minlength=10)
    assert texts == [f"{c}: {100 * counts[c] / 360:.0f}% of 360" for c in range(10)]
    assert texts[3] == "3: 86% of 360"
    pic = _picture(fig)
    assert pic.shape == (10 * (56 + 4), 8 * 58 - 2, 3)  # ten rows of eight 8 px digits at 7x
    # the row of class 3 holds class-3 images only: the first one is the first class-3 image
    first = np.flatnonzero(labels == 3)[0]
    row = 3 * (56 + 4)
    raw = mosaic(digits.test.images[first:first + 1], digits.info, columns=1)
    np.testing.assert_array_equal(pic[row:row + 56, :56], np.kron(raw, np.ones((7, 7, 1), dtype=np.uint8)))
    few = class_grid(digits.test.images, labels, digits.info, per_class=8, max_classes=4)
    assert len(few.layout.annotations) == 4 and "6 smaller class(es) not shown" in few.layout.title.text


def test_k_curve_ticks_are_the_ks_tried_or_1_2_5():
    """Plotly's log ticks read "2 3 4 ... 10 2 3 ... 100"; the axis ticks every K tried (a
    handful), else 1, 2, 5 per decade, so "default 32" sits on a labelled tick."""
    curve = KCurve(ks=[2, 4, 8, 16, 32, 64, 128], inertia=[9.0, 5, 4, 3, 2.5, 2.2, 2.0],
                   silhouette=[0.5] * 7, recommended_k=8, rule="elbow", pca_components=3, n_samples=300)
    fig = k_curve_figure(curve, {"deepinv": 32})
    assert list(fig.layout.xaxis.tickvals) == [2, 4, 8, 16, 32, 64, 128]
    assert list(fig.layout.xaxis.ticktext) == ["2", "4", "8", "16", "32", "64", "128"]
    assert k_ticks(range(1, 101)) == [1, 2, 5, 10, 20, 50, 100]


def test_predictions_figure_marks_a_collapsed_class():
    fig = predictions_figure([0, 5, 95], ["a", "b", "Shirt"], threshold=0.8)
    np.testing.assert_allclose(fig.data[0].y, [0, 5, 95])
    assert list(fig.data[0].marker.color) == ["#1f77b4", "#1f77b4", "#d62728"]
    assert fig.layout.shapes[0].y0 == 80


def test_parallel_coordinates_of_a_sweep():
    fields = {"k": [8, 32, 8], "method": ["deepinv", "deepinv", "dfnd"]}
    fig = parallel_figure(fields, [60.0, 70.0, 50.0])
    (pc,) = fig.data
    assert pc.type == "parcoords"
    dims = {d.label: d for d in pc.dimensions}
    assert list(dims["k"].values) == [8, 32, 8] and dims["k"].ticktext is None  # numeric axis
    assert list(dims["method"].values) == [0, 0, 1] and list(dims["method"].ticktext) == ["deepinv", "dfnd"]
    assert list(dims["final accuracy (%)"].values) == [60, 70, 50] and list(pc.line.color) == [60, 70, 50]
    assert parallel_figure({}, [1.0]).data == ()  # nothing differs: a placeholder with a message


def test_curves_of_runs_without_an_epoch_say_so():
    """A queued run's charts said "(1 runs)" over empty axes from -1 to 6."""
    queued = [{"run_id": "r1", "label": "deepinv kdci=on seed 0", "config": {"method": "deepinv"},
               "history": []}]
    fig = curves_figure(queued, y="student_accuracy")
    assert fig.data == () and fig.layout.annotations[0].text == "waiting for the first epoch"
    assert "(1 run)" in fig.layout.title.text
    assert curves_figure(queued, x="step", y="loss").layout.annotations[0].text == "waiting for the first logged steps"
    done = [{**queued[0], "history": [{"epoch": 1, "student_accuracy": 50.0}]}] * 2
    assert "(2 runs)" in curves_figure(done).layout.title.text and len(curves_figure(done).data) == 2
    # a finished run without a metric (system metrics of an older run): not "waiting"
    assert curves_figure(done[:1], y="cpu_percent").layout.annotations[0].text.startswith("no process CPU")
