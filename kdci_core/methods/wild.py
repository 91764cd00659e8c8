"""Wild-pool scoring and selection, shared by the sampling-based methods (DFND, MosaicKD)."""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common.progress import Progress, report
from ..data import load_wild_pool


def self_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """CE of a prediction against its own argmax: -log max softmax (low = confident)."""
    return -F.log_softmax(logits.float(), dim=1).max(dim=1).values


def entropy(logits: torch.Tensor) -> torch.Tensor:
    """The predictive entropy of each row (MosaicKD's OOD score: high = unconfident)."""
    logp = F.log_softmax(logits.float(), dim=1)
    return -(logp.exp() * logp).sum(1)


#: confidence scores, low = confident: DFND's self cross-entropy, MosaicKD's entropy
SCORES = {"self-ce": self_cross_entropy, "entropy": entropy}


def select_confident(logits: torch.Tensor, n: int, *, balanced: bool = False,
                     least: bool = False, score: str = "self-ce") -> torch.Tensor:
    """Indices of the ``n`` lowest (``least``: highest) ``score`` rows;
    ``balanced``: n // C per predicted class."""
    scores = SCORES[score](logits)
    scores = -scores if least else scores
    if not balanced:
        return torch.argsort(scores)[:n]
    pred, per_class = logits.argmax(1), max(1, n // logits.shape[1])
    picks = [idx[torch.argsort(scores[idx])[:per_class]]
             for c in range(logits.shape[1]) if len(idx := torch.nonzero(pred == c).flatten())]
    return torch.cat(picks)


@torch.no_grad()
def score_pool(teacher: nn.Module, pool: torch.Tensor, *, device: torch.device,
               progress: Progress = None, desc: str = "scoring the wild pool") -> torch.Tensor:
    """Teacher logits (CPU, float32) of every pool image, in batches. On CUDA a CPU pool is
    pinned once, its batches copied asynchronously and the logits kept on the device until the
    end: one host synchronisation for the pool, not one per batch."""
    cuda = torch.device(device).type == "cuda"
    if cuda and pool.device.type == "cpu":
        pool = pool.pin_memory()
    logits = []
    for i in range(0, len(pool), 1024):
        logits.append(teacher(pool[i:i + 1024].to(device, non_blocking=cuda)).float())  # on the device
        report(progress, min(i + 1024, len(pool)), len(pool), desc)
    return torch.cat(logits).cpu()


def load_and_select(ctx, *, pool_size: int, n_select: int, balanced: bool = False,
                    least: bool = False, score: str = "self-ce", desc: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Load the run's wild pool, score it with the teacher, keep ``n_select``; returns
    (selected images on the run's device, their teacher logits on the CPU)."""
    pool = load_wild_pool(ctx.wild_data, ctx.info, n=pool_size, seed=ctx.seed, root=ctx.data_root)
    logits = score_pool(ctx.teacher, pool, device=ctx.device, progress=ctx.progress, desc=desc)
    keep = select_confident(logits, n_select, balanced=balanced, least=least, score=score)
    return pool[keep].to(ctx.device), logits[keep]
