"""Stage 1 of KDCI: the confounder dictionary Z (prototypes) and its prior P(z).

PCA + k-means++ (scikit-learn; in torch from ``TORCH_MIN_SAMPLES`` samples, torch_kmeans.py)
group the prediction features of one substitution set; each prototype is the mean of the
ORIGINAL features of its cluster (PCA only shapes the grouping), its proportion is n_i / N. Both are constants for the distillation step (no gradient).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch import Tensor

from kdci_core.common.device import single_thread_blas
from kdci_core.common.errors import InputError, as_int

#: default PCA: keep this share of the variance ...
PCA_VARIANCE = 0.95
#: ... but never more than this many components.
PCA_MAX_COMPONENTS = 64
#: from this many samples the dictionary is built in torch on the features' device
#: (torch_kmeans.py; scikit-learn below it): 600,000 logits (DFND's paper scale) on a CPU, fewer
#: on a GPU, where the transfer to numpy and the single-threaded Lloyd iterations dominate
TORCH_MIN_SAMPLES = {"cpu": 100_000, "cuda": 10_000}


@dataclass
class ConfounderDictionary:
    """Prototypes ``K' x D``, proportions ``K'`` (sum 1) and the cluster label of every sample.

    ``k_requested`` is the K asked for; ``k`` (= K') may be smaller when clusters came out empty.
    ``pca_components`` is the number of PCA components used for clustering (0 = PCA skipped).
    """

    prototypes: Tensor
    proportions: Tensor
    labels: Tensor
    k_requested: int
    pca_components: int

    @property
    def k(self) -> int:
        """K': the number of non-empty clusters actually kept."""
        return int(self.prototypes.shape[0])

    @property
    def dim(self) -> int:
        """D: the feature dimension of the prototypes."""
        return int(self.prototypes.shape[1])

    def to(self, device) -> "ConfounderDictionary":
        """A copy whose tensors live on ``device``."""
        return replace(self, prototypes=self.prototypes.to(device),
                       proportions=self.proportions.to(device), labels=self.labels.to(device))

    def with_uniform_proportions(self) -> "ConfounderDictionary":
        """The "no P(z)" ablation: same prototypes, P(z_i) = 1 / K' for every i."""
        uniform = torch.full_like(self.proportions, 1.0 / self.k)
        return replace(self, proportions=uniform)


def _check_features(features) -> Tensor:
    """The features must be a finite, real, 2-D ``N x D`` tensor with N >= 1 and D >= 1."""
    if not isinstance(features, Tensor):
        raise InputError(f"features: expected an N x D torch.Tensor, found {type(features).__name__}")
    if features.dim() != 2 or features.shape[0] < 1 or features.shape[1] < 1:
        raise InputError(f"features: expected a non-empty N x D tensor, found shape "
                         f"{tuple(features.shape)}")
    if features.is_complex() or features.dtype == torch.bool:
        raise InputError(f"features: expected a real-valued tensor, found dtype {features.dtype}")
    return features.detach()


def _to_numpy(features: Tensor) -> np.ndarray:
    """float64 numpy copy, finite or InputError (numpy, not torch: see single_thread_blas)."""
    cpu = features.to("cpu")
    if cpu.dtype not in (torch.float32, torch.float64):
        cpu = cpu.to(torch.float32)
    x = cpu.numpy().astype(np.float64)
    finite = np.isfinite(x)
    if not finite.all():
        raise InputError(f"features: expected finite values, found {int((~finite).sum())} "
                         f"NaN/inf entries")
    return x


def _check_k(k, n: int) -> int:
    k = as_int("k", k)
    if k < 1 or k > n:
        raise InputError(f"k: expected a number of clusters between 1 and {n} (the number of "
                         f"samples N={n}; k must not exceed it), found k={k}")
    return k


def _reduce(x: np.ndarray, pca_dim) -> tuple[np.ndarray, int]:
    """PCA for clustering only; returns the reduced data and the number of components used."""
    from sklearn.decomposition import PCA

    n, d = x.shape
    if n < 2 or d == 1:
        return x, 0
    if float(x.var(axis=0).sum()) == 0.0:  # all rows identical: nothing to project
        return x, 0
    # covariance_eigh (a D x D eigendecomposition) is the cheap exact solver when N >= D.
    solver = "covariance_eigh" if n >= d else "full"
    if pca_dim is None:
        pca = PCA(n_components=PCA_VARIANCE, svd_solver=solver)
        reduced = pca.fit_transform(x)[:, :PCA_MAX_COMPONENTS]
    else:
        pca = PCA(n_components=min(pca_dim, n, d), svd_solver=solver)
        reduced = pca.fit_transform(x)
    return np.ascontiguousarray(reduced), int(reduced.shape[1])


def reduce_for_clustering(features, pca_dim: int | None = None) -> tuple[np.ndarray, int]:
    """The exact space the dictionary clusters (float64 numpy, PCA components used).

    Public so diagnostics (the K curve) cluster what build_confounder_dictionary clusters.
    ``features`` is an ``N x D`` torch Tensor or numpy array; same checks as the dictionary.
    """
    if isinstance(features, np.ndarray):
        try:
            features = torch.from_numpy(np.ascontiguousarray(features))
        except TypeError:
            raise InputError(f"features: expected a numeric array, found dtype "
                             f"{features.dtype}") from None
    features = _check_features(features)
    if pca_dim is not None:
        pca_dim = as_int("pca_dim", pca_dim)
        d = int(features.shape[1])
        if not 1 <= pca_dim <= d:
            raise InputError(f"pca_dim: expected a number of PCA components between 1 and {d} "
                             f"(the feature dimension), found {pca_dim}")
    with single_thread_blas():
        return _reduce(_to_numpy(features), pca_dim)


def _cluster(x: np.ndarray, k: int, seed: int) -> np.ndarray:
    """k-means++ labels; the ConvergenceWarning for duplicate points is expected, not news."""
    if k == 1:
        return np.zeros(x.shape[0], dtype=np.int64)
    from sklearn.cluster import KMeans
    from sklearn.exceptions import ConvergenceWarning

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        km = KMeans(n_clusters=k, init="k-means++", n_init=1, random_state=seed)
        return km.fit_predict(x).astype(np.int64)


def build_confounder_dictionary(features: Tensor, k: int, *, pca_dim: int | None = None,
                                seed: int = 0) -> ConfounderDictionary:
    """Cluster ``features`` (``N x D``) into at most ``k`` prototypes with their proportions.

    ``pca_dim=None`` keeps 95% of the variance (at most 64 components, never more than
    min(N, D)); an int keeps that many components (1 <= pca_dim <= D; silently clamped to
    min(N, D) when N is smaller). PCA is skipped when N < 2 or D == 1. ``k`` outside
    [1, N] raises InputError (rejected, not clamped). Empty clusters are dropped and the
    labels re-indexed to 0..K'-1. The result is float32, detached, on the features' device.
    """
    features = _check_features(features)
    n, d = features.shape
    k = _check_k(k, n)
    if pca_dim is not None:
        pca_dim = as_int("pca_dim", pca_dim)
        if not 1 <= pca_dim <= d:
            raise InputError(f"pca_dim: expected a number of PCA components between 1 and {d} "
                             f"(the feature dimension), found {pca_dim}")
    seed = as_int("seed", seed)
    if use_torch_path(features):
        return _build_in_torch(features, k, pca_dim, seed)

    # All of it in numpy on one thread: torch's intra-op threads on a busy CPU cost more
    # than these few thousand additions (measured up to 100 ms for a 256 x 100 index_add_).
    with single_thread_blas():
        x = _to_numpy(features)
        reduced, n_comp = _reduce(x, pca_dim)
        raw = _cluster(reduced, k, seed % (2**32))
        # Drop empty clusters: re-index the labels that occur to 0..K'-1 (order kept).
        kept, labels_np = np.unique(raw, return_inverse=True)
        labels_np = labels_np.reshape(-1).astype(np.int64)
        sums = np.zeros((len(kept), d), dtype=np.float64)
        np.add.at(sums, labels_np, x)
        counts = np.bincount(labels_np, minlength=len(kept)).astype(np.float64)
        prototypes_np = (sums / counts[:, None]).astype(np.float32)
        proportions_np = (counts / n).astype(np.float32)
    device = features.device
    prototypes = torch.from_numpy(prototypes_np).to(device)
    proportions = torch.from_numpy(proportions_np).to(device)
    labels = torch.from_numpy(labels_np).to(device)
    return ConfounderDictionary(prototypes=prototypes, proportions=proportions, labels=labels,
                                k_requested=k, pca_components=n_comp)


def use_torch_path(features: Tensor) -> bool:
    """Whether ``build_confounder_dictionary`` clusters these features in torch."""
    return features.shape[0] >= TORCH_MIN_SAMPLES.get(features.device.type, TORCH_MIN_SAMPLES["cuda"])


def _build_in_torch(features: Tensor, k: int, pca_dim: int | None, seed: int) -> ConfounderDictionary:
    """The same dictionary, PCA and k-means++ in torch on the features' device."""
    from .torch_kmeans import kmeans, pca_reduce

    x = features.float()
    if not bool(torch.isfinite(x).all()):
        raise InputError(f"features: expected finite values, found {int((~torch.isfinite(x)).sum())} "
                         f"NaN/inf entries")
    n, d = x.shape
    if d == 1 or float(x.var(0).sum()) == 0.0:
        reduced, n_comp = x, 0
    else:
        reduced = pca_reduce(x, PCA_VARIANCE, PCA_MAX_COMPONENTS, None if pca_dim is None else min(pca_dim, n, d))
        n_comp = int(reduced.shape[1])
    raw = torch.zeros(n, dtype=torch.long, device=x.device) if k == 1 else kmeans(reduced, k, seed=seed)[0]
    kept, labels = torch.unique(raw, return_inverse=True)
    sums = torch.zeros(len(kept), d, dtype=torch.float64, device=x.device).index_add_(0, labels, x.double())
    counts = torch.bincount(labels, minlength=len(kept)).double()
    return ConfounderDictionary(prototypes=(sums / counts[:, None]).float(), proportions=(counts / n).float(),
                                labels=labels, k_requested=k, pca_components=n_comp)


def random_prototypes_like(dictionary: ConfounderDictionary, features: Tensor, *,
                           seed: int) -> ConfounderDictionary:
    """The "random prototypes" ablation: same K' and proportions, prototypes drawn from
    N(mean_j, std_j^2) per dimension j, with the mean and (population) std of ``features``.

    The noise comes from a CPU generator seeded with ``seed``, so it is the same on any device.
    """
    features = _check_features(features)
    if features.shape[1] != dictionary.dim:
        raise InputError(f"features: expected dimension {dictionary.dim} (the dictionary's), "
                         f"found shape {tuple(features.shape)}")
    seed = as_int("seed", seed)
    with single_thread_blas():
        x = _to_numpy(features)
        mean, std = x.mean(axis=0), x.std(axis=0)
    gen = torch.Generator(device="cpu").manual_seed(seed % (2**63))
    noise = torch.randn(dictionary.k, dictionary.dim, generator=gen, dtype=torch.float64)
    prototypes = torch.from_numpy(mean) + torch.from_numpy(std) * noise
    return replace(dictionary,
                   prototypes=prototypes.to(torch.float32).to(dictionary.prototypes.device))
