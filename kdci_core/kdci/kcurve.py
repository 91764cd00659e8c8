"""The K curve: k-means inertia and silhouette over a grid of K, and a recommended K.

Why: KDCI's confounder dictionary needs a number of prototypes K. This clusters exactly the
space the dictionary clusters (same PCA, same k-means++ with n_init=1 and seed), so the curve
describes the dictionary that ``build_confounder_dictionary(features, k, seed=seed)`` would
build, and proposes the elbow as a default.
"""

from __future__ import annotations

import numbers
import warnings
from dataclasses import asdict, dataclass
from itertools import pairwise

import numpy as np

from kdci_core.common.device import single_thread_blas
from kdci_core.common.errors import InputError
from kdci_core.common.progress import Progress, report
from kdci_core.kdci.dictionary import reduce_for_clustering

#: How :func:`recommend_k` chooses, in one sentence (shown next to the curve).
RULE = ("Elbow by the kneedle rule: with log2(K) and the inertia each scaled to [0, 1], the "
        "recommended K is the one whose point lies farthest below the straight line from the "
        "first to the last point of the curve (ties and a flat curve give the smaller K).")


@dataclass
class KCurve:
    """Inertia and silhouette per K, the recommended K and how it was chosen."""

    ks: list[int]
    inertia: list[float]
    silhouette: list[float | None]  # None where undefined (K = 1, K = N, one label in sample)
    recommended_k: int
    rule: str
    pca_components: int  # components the clustering used (0 = PCA skipped), as the dictionary
    n_samples: int

    def to_dict(self) -> dict:
        return asdict(self)


def _int(name: str, value) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InputError(f"{name}: expected an integer, found {value!r}")
    return int(value)


def default_k_grid(n_samples: int, max_k: int = 256) -> list[int]:
    """Powers of two from 2 to min(max_k, N // 2): a log-spaced grid, cheap and wide enough."""
    n = _int("n_samples", n_samples)
    max_k = _int("max_k", max_k)
    if n < 4:
        raise InputError(f"n_samples: expected at least 4 samples for a K curve, found {n}")
    if max_k < 2:
        raise InputError(f"max_k: expected at least 2, found {max_k}")
    top = min(max_k, n // 2)
    ks, k = [], 2
    while k <= top:
        ks.append(k)
        k *= 2
    return ks


def recommend_k(ks, inertia) -> int:
    """The kneedle elbow of an inertia curve (see :data:`RULE`)."""
    ks = [_int("ks", k) for k in ks]
    if not ks or len(ks) != len(inertia):
        raise InputError(f"inertia: expected one value per K ({len(ks)} K values, at least one), "
                         f"found {len(inertia)} values")
    if min(ks) < 1:
        raise InputError(f"ks: expected every K >= 1, found {min(ks)}")
    y = np.asarray(inertia, dtype=np.float64)
    if not np.isfinite(y).all():
        raise InputError("inertia: expected finite values, found NaN/inf")
    order = np.argsort(ks, kind="stable")
    k_sorted = np.asarray(ks, dtype=np.int64)[order]
    y = y[order]
    x = np.log2(k_sorted.astype(np.float64))
    if len(k_sorted) < 3 or x[-1] == x[0] or y.max() == y.min():
        return int(k_sorted[0])
    x = (x - x[0]) / (x[-1] - x[0])
    y = (y - y.min()) / (y.max() - y.min())
    line = y[0] + (y[-1] - y[0]) * x
    below = line - y
    best = float(below.max())
    if best <= 1e-12:  # nothing below the chord: no elbow, the smallest K
        return int(k_sorted[0])
    return int(k_sorted[int(np.flatnonzero(below >= best - 1e-12)[0])])


def _check_ks(ks, n: int) -> list[int]:
    if isinstance(ks, (str, bytes)) or not hasattr(ks, "__iter__"):
        raise InputError(f"ks: expected a list of integers, found {ks!r}")
    ks = [_int("ks", k) for k in ks]
    if not ks:
        raise InputError("ks: expected at least one K, found an empty list")
    bad = [k for k in ks if not 1 <= k <= n]
    if bad:
        raise InputError(f"ks: expected every K between 1 and {n} (the number of samples N={n}), "
                         f"found {bad}")
    if any(b <= a for a, b in pairwise(ks)):
        raise InputError(f"ks: expected increasing K values without repeats, found {ks}")
    return ks


def _silhouette(x: np.ndarray, labels: np.ndarray, k: int, sample: int, seed: int) -> float | None:
    from sklearn.metrics import silhouette_score

    n = x.shape[0]
    if not 2 <= k < n:
        return None
    try:
        return float(silhouette_score(x, labels, sample_size=min(n, sample), random_state=seed))
    except ValueError:  # fewer than 2 (or N) distinct labels, e.g. duplicate points
        return None


def k_curve(features, ks=None, *, pca_dim: int | None = None, seed: int = 0,
            silhouette_samples: int = 2000, progress: Progress = None) -> KCurve:
    """Cluster ``features`` (``N x D``, Tensor or numpy) for every K in ``ks``.

    ``ks=None`` uses :func:`default_k_grid`. The silhouette is computed on at most
    ``silhouette_samples`` points (it is O(N^2)), the inertia on all of them.
    """
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    seed = _int("seed", seed)
    silhouette_samples = _int("silhouette_samples", silhouette_samples)
    if silhouette_samples < 2:
        raise InputError(f"silhouette_samples: expected at least 2, found {silhouette_samples}")
    x, n_comp = reduce_for_clustering(features, pca_dim)
    n = int(x.shape[0])
    ks = default_k_grid(n) if ks is None else _check_ks(ks, n)
    rs = seed % (2**32)  # as the dictionary seeds k-means
    inertia: list[float] = []
    silhouette: list[float | None] = []
    report(progress, 0, len(ks), "K curve")
    with single_thread_blas(), warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        for i, k in enumerate(ks):
            if k == 1:
                labels = np.zeros(n, dtype=np.int64)
                inertia.append(float(((x - x.mean(axis=0)) ** 2).sum()))
            else:
                km = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=rs).fit(x)
                labels = km.labels_
                inertia.append(float(km.inertia_))
            silhouette.append(_silhouette(x, labels, k, silhouette_samples, rs))
            report(progress, i + 1, len(ks), "K curve")
    return KCurve(ks=ks, inertia=inertia, silhouette=silhouette,
                  recommended_k=recommend_k(ks, inertia), rule=RULE, pca_components=n_comp,
                  n_samples=n)
