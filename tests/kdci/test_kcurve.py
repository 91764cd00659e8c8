"""K curve: the elbow finds the true K of a clear mixture; it clusters the dictionary's space."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kdci_core.kdci.kcurve import (
    RULE,
    KCurve,
    default_k_grid,
    k_curve,
    recommend_k,
)
from kdci_core.errors import InputError
from kdci_core.kdci.dictionary import build_confounder_dictionary, reduce_for_clustering

GRID = [1, 2, 3, 4, 6, 8, 12, 16]


def mixture(n: int = 200, k: int = 4, d: int = 8, seed: int = 0, scale: float = 10.0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=scale, size=(k, d))
    labels = np.arange(n) % k
    return centres[labels] + rng.normal(size=(n, d)), labels


def test_recommends_true_k_on_separated_mixture():
    x, _ = mixture()
    curve = k_curve(x, GRID)
    assert isinstance(curve, KCurve)
    assert curve.ks == GRID and curve.n_samples == 200 and curve.rule == RULE
    assert curve.recommended_k == 4
    assert curve.silhouette[0] is None  # K = 1: undefined
    assert all(s is not None and -1 <= s <= 1 for s in curve.silhouette[1:])
    assert int(np.argmax([s for s in curve.silhouette[1:]])) + 1 == GRID.index(4)
    # non-increasing up to k-means noise, and a big drop at the true K
    assert all(b <= a * 1.05 for a, b in zip(curve.inertia, curve.inertia[1:]))
    assert curve.inertia[GRID.index(4)] < 0.1 * curve.inertia[GRID.index(3)]
    d = curve.to_dict()
    assert d["recommended_k"] == 4 and d["ks"] == GRID and d["silhouette"][0] is None


def test_default_grid_and_torch_input():
    x, _ = mixture()
    curve = k_curve(torch.from_numpy(x).float())
    assert curve.ks == [2, 4, 8, 16, 32, 64] == default_k_grid(200)
    assert curve.recommended_k == 4
    assert default_k_grid(4) == [2]
    assert default_k_grid(10_000) == [2 ** i for i in range(1, 9)]
    assert default_k_grid(10_000, max_k=10) == [2, 4, 8]
    with pytest.raises(InputError, match="n_samples"):
        default_k_grid(3)


def test_same_space_and_clustering_as_the_dictionary():
    x, _ = mixture(n=120, k=3, d=20, seed=1)
    feats = torch.from_numpy(x).float()
    curve = k_curve(feats, [3], seed=5)
    dic = build_confounder_dictionary(feats, 3, seed=5)
    assert curve.pca_components == dic.pca_components > 0
    reduced, n_comp = reduce_for_clustering(feats)
    assert n_comp == dic.pca_components and reduced.shape == (120, n_comp)
    labels = dic.labels.numpy()
    inertia = sum(((reduced[labels == c] - reduced[labels == c].mean(0)) ** 2).sum()
                  for c in np.unique(labels))
    assert curve.inertia[0] == pytest.approx(inertia, rel=1e-6)
    assert k_curve(feats, [2, 3], pca_dim=2).pca_components == 2


def test_recommend_k_rules():
    assert recommend_k([1, 2, 4, 8, 16], [100, 10, 8, 7, 6]) == 2
    assert recommend_k([16, 1, 4, 2, 8], [6, 100, 8, 10, 7]) == 2  # order does not matter
    assert recommend_k([2, 4, 8], [5.0, 5.0, 5.0]) == 2  # flat
    assert recommend_k([2, 4, 8], [1.0, 2.0, 3.0]) == 2  # nothing below the chord
    assert recommend_k([8], [3.0]) == 8
    # two points equally far below the chord: the smaller K
    assert recommend_k([1, 2, 4, 8], [1.0, 0.5, 1 / 6, 0.0]) == 2
    rng = np.random.default_rng(0)
    for _ in range(50):
        ks = sorted(rng.choice(np.arange(1, 300), size=int(rng.integers(1, 10)), replace=False))
        inertia = np.sort(rng.random(len(ks)))[::-1]
        assert recommend_k(ks, inertia) in ks
    with pytest.raises(InputError, match="inertia"):
        recommend_k([1, 2], [1.0])
    with pytest.raises(InputError, match="ks"):
        recommend_k([0, 2], [1.0, 0.5])


def test_recommended_k_within_searched_range():
    x, _ = mixture(n=150, k=5, d=6, seed=2, scale=2.0)  # overlapping clusters
    curve = k_curve(x, [3, 5, 7, 9, 11])
    assert curve.recommended_k in curve.ks
    assert len(curve.inertia) == len(curve.silhouette) == 5


@pytest.mark.parametrize("ks", [[], [0, 2], [2, 2], [4, 2], ["a"], [2.5], [True], 3, "24"])
def test_bad_ks(ks):
    x, _ = mixture(n=40)
    with pytest.raises(InputError, match="ks"):
        k_curve(x, ks)


def test_bad_inputs():
    x, _ = mixture(n=40)
    with pytest.raises(InputError, match="between 1 and 40"):
        k_curve(x, [2, 41])
    bad = x.copy()
    bad[3, 1] = np.nan
    with pytest.raises(InputError, match="finite"):
        k_curve(bad, [2])
    with pytest.raises(InputError, match="features"):
        k_curve(x[:, 0], [2])
    with pytest.raises(InputError, match="pca_dim"):
        k_curve(x, [2], pca_dim=0)
    with pytest.raises(InputError, match="seed"):
        k_curve(x, [2], seed=1.5)
    with pytest.raises(InputError, match="silhouette_samples"):
        k_curve(x, [2], silhouette_samples=1)


def test_k_equal_n_duplicates_and_progress():
    x, _ = mixture(n=12, k=3)
    calls = []
    curve = k_curve(x, [1, 2, 12], progress=lambda *a: calls.append(a))
    assert curve.silhouette[0] is None and curve.silhouette[2] is None  # K = 1 and K = N
    assert curve.inertia[2] == pytest.approx(0.0, abs=1e-9)
    assert calls[0] == (0, 3, "K curve") and calls[-1] == (3, 3, "K curve") and len(calls) == 4
    same = np.ones((20, 3))  # every point identical: one cluster, silhouette undefined
    flat = k_curve(same, [1, 2, 4])
    assert flat.recommended_k == 1 and flat.silhouette == [None, None, None]


def test_silhouette_subsample_is_seeded():
    x, _ = mixture(n=300)
    a = k_curve(x, [4, 8], silhouette_samples=100, seed=3)
    b = k_curve(x, [4, 8], silhouette_samples=100, seed=3)
    assert a.silhouette == b.silhouette and a.inertia == b.inertia
