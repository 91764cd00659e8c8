"""PCA and k-means++ in torch, for dictionaries of many samples (DFND's 600,000 logits).

scikit-learn is the reference and stays the path for small N (a generation method's 64-image
mini-batches, the tests); at large N its single-threaded Lloyd iterations take most of a minute
on a CPU. This is the same algorithm on the run's device, with the same stopping rule:

- PCA by the eigendecomposition of the D x D covariance (scikit-learn's ``covariance_eigh``);
- k-means++ seeding with ``2 + ln K`` local trials per centre (scikit-learn's greedy variant);
- Lloyd iterations until the centres move less than ``tol`` x the mean feature variance
  (squared), at most ``max_iter``; an empty cluster takes the point farthest from its centre;
- float32 throughout, distances in row blocks that stay in cache (``block x K``).

Seeded by a ``torch.Generator`` on the CPU: the same seed gives the same labels on a device.
Its inertia is within 1% of scikit-learn's on the same data (tests/kdci/test_torch_kmeans.py).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

#: rows of the N x K distance matrix computed at once (a block stays in the CPU's cache)
BLOCK_ROWS = 4096


def pca_reduce(x: Tensor, variance: float, max_components: int, n_components: int | None) -> Tensor:
    """``x`` (N x D) projected on its leading principal components: ``n_components`` of them,
    or as many as keep ``variance`` of the variance (at most ``max_components``)."""
    xc = x - x.mean(0, keepdim=True)
    cov = (xc.T.double() @ xc.double()) / max(1, x.shape[0] - 1)
    values, vectors = torch.linalg.eigh(cov)
    values, vectors = values.flip(0).clamp_min(0), vectors.flip(1)
    if n_components is None:
        share = values.cumsum(0) / values.sum().clamp_min(1e-300)
        n_components = min(int((share < variance).sum()) + 1, max_components, x.shape[1])
    return xc @ vectors[:, :n_components].to(x.dtype)


def _sq_dist(x: Tensor, x_sq: Tensor, centres: Tensor, out: Tensor | None = None) -> Tensor:
    """Squared distances ``len(x) x len(centres)`` (clamped at 0 against rounding), written into
    ``out`` when given: one ``addmm`` and two in-place passes, no broadcast temporaries (at
    600k x 64 the broadcast formula made k-means++ seeding 4x slower)."""
    out = torch.addmm((centres * centres).sum(1)[None, :], x, centres.T, alpha=-2, out=out)
    return out.add_(x_sq[:, None]).clamp_min_(0)


def _assign(x: Tensor, x_sq: Tensor, centres: Tensor) -> tuple[Tensor, Tensor]:
    """Nearest centre of every row and its squared distance, block by block: ``|c|^2 - 2 x.c``
    in one ``addmm`` (``|x|^2`` does not change which centre is nearest; added to the minimum)."""
    labels = torch.empty(x.shape[0], dtype=torch.long, device=x.device)
    dist = torch.empty(x.shape[0], dtype=x.dtype, device=x.device)
    c_sq, ct = (centres * centres).sum(1)[None, :], centres.T.contiguous()
    for i in range(0, x.shape[0], BLOCK_ROWS):
        d = torch.addmm(c_sq, x[i:i + BLOCK_ROWS], ct, alpha=-2)
        torch.min(d, 1, out=(dist[i:i + BLOCK_ROWS], labels[i:i + BLOCK_ROWS]))
    return labels, dist.add_(x_sq).clamp_min_(0)


def _pick(weights: Tensor, count: int, gen: torch.Generator) -> Tensor:
    """``count`` indices drawn with probability proportional to ``weights`` (CPU randomness)."""
    cum = weights.double().cumsum(0)
    draws = torch.rand(count, generator=gen, dtype=torch.float64).to(weights.device) * cum[-1]
    return torch.searchsorted(cum, draws).clamp_max_(len(weights) - 1)


def kmeans_pp_init(x: Tensor, x_sq: Tensor, k: int, gen: torch.Generator) -> Tensor:
    """k-means++ seeding, greedy: of ``2 + ln k`` candidates per centre, the one that lowers the
    potential most. The candidates' distances go into one reused N x trials buffer."""
    n = x.shape[0]
    trials = 2 + int(math.log(k))
    centres = torch.empty(k, x.shape[1], dtype=x.dtype, device=x.device)
    first = int(torch.randint(n, (1,), generator=gen))
    centres[0] = x[first]
    closest = _sq_dist(x, x_sq, centres[:1])[:, 0]
    d = torch.empty(n, trials, dtype=x.dtype, device=x.device)
    for c in range(1, k):
        cand = x[_pick(closest, trials, gen)]
        _sq_dist(x, x_sq, cand, out=d)                     # N x trials
        potential = torch.minimum(closest[:, None], d).sum(0, dtype=torch.float64)
        best = int(potential.argmin())
        centres[c] = cand[best]
        torch.minimum(closest, d[:, best], out=closest)
    return centres


def kmeans(x: Tensor, k: int, *, seed: int = 0, max_iter: int = 300, tol: float = 1e-4) -> tuple[Tensor, float]:
    """k-means++ then Lloyd on ``x`` (N x D, any device); returns (labels ``N``, inertia)."""
    x = x.float().contiguous()
    gen = torch.Generator().manual_seed(int(seed))
    x_sq = (x * x).sum(1)
    centres = kmeans_pp_init(x, x_sq, k, gen)
    limit = tol * float(x.var(0).mean())
    for _ in range(max_iter):
        labels, dist = _assign(x, x_sq, centres)
        sums = torch.zeros(k, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, labels, x)
        counts = torch.bincount(labels, minlength=k).to(x.dtype)
        new = sums / counts.clamp_min(1)[:, None]
        empty = (counts == 0).nonzero().flatten()
        if len(empty):  # relocate each empty centre to one of the farthest points
            far = dist.topk(len(empty)).indices
            new[empty] = x[far]
        shift = float(((new - centres) ** 2).sum())
        centres = new
        if shift <= limit:
            break
    labels, dist = _assign(x, x_sq, centres)
    return labels, float(dist.double().sum())
