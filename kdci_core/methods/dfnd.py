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

from .base import SamplingMethod
from .registry import METHODS
from .wild import load_and_select, self_cross_entropy


class NoiseAdaptation(nn.Module):
    """Row-stochastic C x C transition matrix, softmax-parametrised, identity-dominant at start."""

    def __init__(self, num_classes: int, init_diag: float = 4.0):
        super().__init__()
        self.logits = nn.Parameter(torch.eye(num_classes) * init_diag)

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return probs @ F.softmax(self.logits, dim=1)


@METHODS.register("dfnd")
class DFND(SamplingMethod):
    default_k = 128  # KDCI's K for sampled unlabeled data (KDCI paper, section 4.3)
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
        self.selected, logits = load_and_select(
            self.ctx, pool_size=self.p["pool_size"], n_select=self.p["n_select"],
            balanced=self.p["balanced"], desc="dfnd: scoring the wild pool")
        self.selection_scores = self_cross_entropy(logits)

    def student_losses(self, x, s_hat, t):
        noisy_labels = t.argmax(1)
        adapted = self.noise(F.softmax(s_hat.float(), dim=1)).clamp_min(1e-8)
        return {"noise": self.p["noise_weight"] * F.nll_loss(adapted.log(), noisy_labels)}

    def student_modules(self):
        return [self.noise]
