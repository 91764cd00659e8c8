"""DFND (Chen et al., CVPR 2021, "Learning Student Networks in the Wild").

Substitution data: from a pool of unlabeled wild images keep the ``n_select`` the teacher is most
confident about (lowest self cross-entropy, i.e. highest max-softmax). The selection is fixed.
Extra loss: noise adaptation. The teacher's labels on wild images are noisy; a learnable
row-stochastic transition matrix Q (softmax of a C x C parameter, initialised near identity)
maps the student's class posterior to the teacher's noisy label: CE(argmax t, log(p_s Q)).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..data import load_wild_pool
from ..kdci import DEFAULT_K
from ..progress import report
from . import METHODS
from .base import SamplingMethod


class NoiseAdaptation(nn.Module):
    """Row-stochastic C x C transition matrix, softmax-parametrised, identity-dominant at start."""

    def __init__(self, num_classes: int, init_diag: float = 4.0):
        super().__init__()
        self.logits = nn.Parameter(torch.eye(num_classes) * init_diag)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return probs @ F.softmax(self.logits, dim=1)


def self_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """CE of a prediction against its own argmax: -log max softmax (low = confident)."""
    return -F.log_softmax(logits.float(), dim=1).max(dim=1).values


def select_confident(logits: torch.Tensor, n: int, *, balanced: bool = False) -> torch.Tensor:
    """Indices of the ``n`` lowest self-cross-entropy rows; ``balanced``: n // C per predicted class."""
    scores = self_cross_entropy(logits)
    if not balanced:
        return torch.argsort(scores)[:n]
    pred, per_class = logits.argmax(1), max(1, n // logits.shape[1])
    picks = [idx[torch.argsort(scores[idx])[:per_class]]
             for c in range(logits.shape[1]) if len(idx := torch.nonzero(pred == c).flatten())]
    return torch.cat(picks)


@METHODS.register("dfnd")
class DFND(SamplingMethod):
    name = "dfnd"
    default_k = DEFAULT_K["dfnd"]
    default_tau = 4.0
    defaults = {"pool_size": 20_000, "n_select": 2_000, "noise_weight": 1.0, "noise_init_diag": 4.0,
                "balanced": False}
    sources = {
        "pool_size": "chosen here (the default wild pool is crops of 2 photographs)",
        "n_select": "chosen here (DFND keeps the top-N confident images; N scaled to the pool)",
        "noise_weight": "chosen here (equal weight to KD)",
        "noise_init_diag": "chosen here (Q starts with ~86% on the diagonal for 10 classes)",
        "balanced": "option: keep the most confident n_select/C per predicted class instead",
    }

    def __init__(self, ctx):
        super().__init__(ctx)
        self.noise = NoiseAdaptation(ctx.info.num_classes, self.p["noise_init_diag"]).to(ctx.device)
        self.selection_scores: torch.Tensor | None = None

    def prepare(self):
        ctx = self.ctx
        pool = load_wild_pool(ctx.wild_data, ctx.info, n=self.p["pool_size"], seed=ctx.seed,
                              root=ctx.data_root)
        logits = []
        with torch.no_grad():
            for i in range(0, len(pool), 1024):
                logits.append(ctx.teacher(pool[i:i + 1024].to(ctx.device)).float().cpu())
                report(ctx.progress, min(i + 1024, len(pool)), len(pool), "dfnd: scoring the wild pool")
        logits = torch.cat(logits)
        keep = select_confident(logits, self.p["n_select"], balanced=self.p["balanced"])
        self.selected = pool[keep].to(ctx.device)
        self.selection_scores = self_cross_entropy(logits[keep])

    def student_losses(self, x, s_hat, t):
        noisy_labels = t.argmax(1)
        adapted = self.noise(F.softmax(s_hat.float(), dim=1)).clamp_min(1e-8)
        return {"noise": self.p["noise_weight"] * F.nll_loss(adapted.log(), noisy_labels)}

    def student_modules(self):
        return [self.noise]
