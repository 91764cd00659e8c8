"""2-D projections: shapes, prototypes placed among their points, the input-keyed cache."""

from __future__ import annotations

import sys

import numpy as np
import pytest
import torch

from kdci_core.diagnostics import projections as proj
from kdci_core.diagnostics.projections import METHODS, Projection, clear_cache, project
from kdci_core.errors import InputError


@pytest.fixture(autouse=True)
def _fresh_cache():
    clear_cache()
    yield
    clear_cache()


def mixture(n: int = 150, k: int = 3, d: int = 10, seed: int = 0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=8.0, size=(k, d))
    labels = np.arange(n) % k
    return centres[labels] + rng.normal(size=(n, d)), labels, centres


def disk_files() -> list:
    folder = proj.cache_dir()
    return sorted(folder.glob("*.npz")) if folder.exists() else []


def check_layout(p: Projection, n: int, m: int | None) -> None:
    assert p.points.shape == (n, 2) and np.isfinite(p.points).all()
    if m is None:
        assert p.extra is None
    else:
        assert p.extra.shape == (m, 2) and np.isfinite(p.extra).all()


def nearest_cluster_of_extra(p: Projection, labels: np.ndarray) -> list[int]:
    d = ((p.extra[:, None, :] - p.points[None, :, :]) ** 2).sum(-1)
    return [int(labels[i]) for i in d.argmin(1)]


def test_pca_extra_uses_the_fitted_pca():
    x, _, centres = mixture()
    p = project(x, "pca", extra=x[:4])
    check_layout(p, 150, 4)
    assert np.allclose(p.extra, p.points[:4])  # extra is transformed, not refitted
    assert p.method == "pca" and not p.cached and p.seconds >= 0
    assert len(p.params["explained_variance_ratio"]) == 2
    one_feature = project(x[:, :1], "pca")
    assert one_feature.points.shape == (150, 2) and np.all(one_feature.points[:, 1] == 0)
    t = project(torch.from_numpy(x).float(), "pca", extra=torch.from_numpy(centres).float())
    check_layout(t, 150, 3)


def test_tsne_places_prototypes_among_their_points_and_caches():
    x, labels, centres = mixture()
    p = project(x, "tsne", extra=centres, seed=0)
    check_layout(p, 150, 3)
    assert not p.cached and p.seconds > 0
    assert nearest_cluster_of_extra(p, labels) == [0, 1, 2]
    assert p.params["perplexity_used"] == 30.0 and "note" not in p.params
    files = disk_files()
    assert len(files) == 1
    again = project(x, "tsne", extra=centres, seed=0)
    assert again.cached and again.seconds == 0.0
    assert np.array_equal(again.points, p.points) and np.array_equal(again.extra, p.extra)
    again.points[:] = 0  # callers own their copy; the cache is untouched
    clear_cache(disk=False)  # memory gone: served from disk
    disk = project(x, "tsne", extra=centres, seed=0)
    assert disk.cached and np.array_equal(disk.points, p.points)
    assert disk.params["perplexity_used"] == 30.0


def test_tsne_perplexity_clamped_for_few_points():
    x, _, _ = mixture(n=10)
    p = project(x, "tsne", perplexity=30.0)
    check_layout(p, 10, None)
    assert p.params["perplexity"] == 30.0
    assert p.params["perplexity_used"] == pytest.approx(3.0)  # (N + M - 1) / 3
    assert "clamped" in p.params["note"]
    q = project(x, "tsne", extra=x[:2], perplexity=30.0)
    assert q.params["perplexity_used"] == pytest.approx(11 / 3)


def test_key_depends_on_seed_params_and_data():
    x, _, _ = mixture(n=30)
    project(x, "pca", seed=0)
    assert not project(x, "pca", seed=1).cached
    assert len(disk_files()) == 2
    assert project(x, "pca", seed=1).cached
    assert not project(x.astype(np.float32), "pca", seed=1).cached  # dtype is part of the key
    assert not project(x, "pca", seed=1, extra=x[:2]).cached
    y = x.copy()
    y[0, 0] += 1e-9
    assert not project(y, "pca", seed=1).cached
    k1 = proj._key(x, None, "tsne", {"perplexity": 30.0}, 0)
    assert k1 != proj._key(x, None, "tsne", {"perplexity": 20.0}, 0)
    assert k1 != proj._key(x, None, "tsne", {"perplexity": 30.0}, 1)
    assert k1 != proj._key(x, None, "umap", {"perplexity": 30.0}, 0)


def test_cache_false_neither_reads_nor_writes():
    x, _, _ = mixture(n=30)
    project(x, "pca")
    n_files = len(disk_files())
    p = project(x, "pca", cache=False)
    assert not p.cached and len(disk_files()) == n_files
    clear_cache()
    project(x, "pca", cache=False)
    assert disk_files() == []


def test_corrupt_disk_entry_is_recomputed():
    x, _, _ = mixture(n=30)
    first = project(x, "pca")
    clear_cache(disk=False)
    (path,) = disk_files()
    path.write_bytes(b"not an npz")
    p = project(x, "pca")
    assert not p.cached and np.allclose(p.points, first.points)


def check_progress(calls: list) -> None:
    """One bar: a fixed total, ``done`` never decreasing, ending at the total."""
    assert calls, "no progress reported"
    totals = {c[1] for c in calls}
    assert len(totals) == 1, totals
    done = [c[0] for c in calls]
    assert done == sorted(done) and done[-1] == calls[0][1] and done[0] < done[-1]
    assert all(isinstance(c[2], str) and c[2] for c in calls)


def test_progress_reported():
    x, _, centres = mixture(n=30)
    calls = []
    project(x, "pca", extra=centres, progress=lambda *a: calls.append(a))
    check_progress(calls)
    assert [c[2].split(" ")[1] for c in calls[:3]] == ["fitting", "projecting", "saving"]
    assert calls[0][:2] == (0, 3) and calls[-1][:2] == (3, 3)
    hit = []
    project(x, "pca", extra=centres, progress=lambda *a: hit.append(a))
    assert hit == [(1, 1, "PCA: from the cache")]  # no stages: nothing was computed
    plain = []
    project(x, "tsne", cache=False, progress=lambda *a: plain.append(a))
    check_progress(plain)
    assert plain[0][2].startswith("t-SNE: fitting 30 points")
    assert len({c[2].split(" · ")[0] for c in plain}) == 2  # fitting (with its seconds), done


@pytest.mark.parametrize("kwargs, match", [
    ({"method": "mds"}, "method"),
    ({"points": np.zeros((2, 4))}, "at least 3"),
    ({"points": np.zeros(10)}, "2-D"),
    ({"points": np.zeros((5, 2, 2))}, "2-D"),
    ({"points": np.array([[1.0, np.nan], [0, 0], [1, 1]])}, "finite"),
    ({"points": np.array([["a", "b"]] * 4)}, "numeric"),
    ({"extra": np.zeros((2, 3))}, "extra"),
    ({"extra": np.full((2, 4), np.inf)}, "finite"),
    ({"method": "tsne", "perplexity": 0}, "perplexity"),
    ({"method": "umap", "n_neighbors": 1}, "n_neighbors"),
    ({"method": "umap", "n_neighbors": 2.5}, "n_neighbors"),
    ({"seed": "0"}, "seed"),
])
def test_input_errors(kwargs, match):
    args = {"points": np.random.default_rng(0).normal(size=(20, 4)), "method": "pca", **kwargs}
    with pytest.raises(InputError, match=match):
        project(args.pop("points"), args.pop("method"), **args)


def test_umap_missing_is_an_input_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "umap", None)  # `import umap` raises ImportError
    x, _, _ = mixture(n=20)
    with pytest.raises(InputError, match="umap-learn"):
        project(x, "umap")


def test_umaps_own_bar_reaches_the_callback():
    """umap-learn's tqdm bar, written to our stream, becomes progress calls with its counts."""
    calls = []
    stream = proj._TqdmStream(lambda *a: calls.append(a))
    for text in ("0/500", "\r120/500", "\r500/500\n", ""):
        stream.write(text)
    assert calls == [(0, 500, "UMAP: optimising the layout"), (120, 500, "UMAP: optimising the layout"),
                     (500, 500, "UMAP: optimising the layout")]


def test_umap():
    """UMAP in stages, each on the bar: loading umap-learn (when this process has not), the
    nearest neighbours chunk by chunk, the graph, the layout's epochs (umap-learn's own bar).
    One function: UMAP's first call in a process pays a numba compile (~10-20 s)."""
    x, labels, centres = mixture(n=proj.KNN_CHUNK + 150)
    rows, calls = len(x) + 3, []
    units = proj.umap_units(rows, "umap" in sys.modules)
    p = project(x, "umap", extra=centres, seed=0, progress=lambda *a: calls.append(a))
    check_layout(p, len(x), 3)
    check_progress(calls)
    assert calls[0][1] == sum(units.values()) + 1  # + the cache write
    stage = lambda c: c[2].split(" · ")[0]  # noqa: E731  (a silent stage's seconds follow " · ")
    neighbours = [c[0] for c in calls if stage(c).startswith("UMAP: nearest neighbours of")]
    assert len(set(neighbours)) == 2  # two chunks of rows, each reported
    assert any(stage(c).startswith("UMAP: fuzzy graph") for c in calls)
    layout = [c[0] for c in calls if stage(c) == "UMAP: optimising the layout"]
    # how many layout reports the bar gets depends on the machine's speed (the caller's thread
    # passes on the latest one it finds): only that they grow to the end is asserted here
    assert layout == sorted(layout) and max(layout) >= sum(units.values()) - 1
    assert nearest_cluster_of_extra(p, labels) == [0, 1, 2]
    assert p.params["n_neighbors_used"] == 15 and "note" not in p.params
    again = project(x, "umap", extra=centres, seed=0)
    assert again.cached and np.array_equal(again.points, p.points)
    small = project(x[:9], "umap", extra=x[:2], n_neighbors=15)
    check_layout(small, 9, 2)
    assert small.params["n_neighbors_used"] == 10 and "clamped" in small.params["note"]
    assert set(METHODS) == {"pca", "tsne", "umap"}
