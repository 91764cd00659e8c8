"""DFND (Chen et al., CVPR 2021, "Learning Student Networks in the Wild"), as its code computes it
(huawei-noah Efficient-Computing, DFND/DFND-train.py).

Substitution data: from a pool of unlabeled wild images keep the ``n_select`` the teacher is most
confident about (lowest self cross-entropy, i.e. highest max-softmax), globally (``balanced``:
the most confident n_select/C per predicted class instead). The selection is fixed.
Extra loss: noise adaptation. The teacher's labels on wild images are noisy; a row-stochastic
transition matrix Q maps the student's class posterior to the teacher's noisy label:
NLL(log(p_s Q), argmax t), added to KD (T=4) with weight 1. Q's diagonal is fixed to the
teacher's accuracy (the reference hard-codes its teacher's test accuracy; here the run's teacher
is scored on the test split), and only the off-diagonal mass is learned (a softmax per row,
zero-initialised, so uniform at start), by its own Adam (lr 1e-3, no weight decay).
"""

from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from .base import SamplingMethod
from .registry import METHODS
from .wild import load_and_select, self_cross_entropy

_REF = "DFND-train.py"


class NoiseAdaptation(nn.Module):
    """Row-stochastic C x C transition matrix with a fixed diagonal ``diagonal`` and learned
    off-diagonal shares (softmax of a C x (C-1) parameter, times 1 - diagonal)."""

    def __init__(self, num_classes: int, diagonal: float):
        super().__init__()
        self.off = nn.Parameter(torch.zeros(num_classes, num_classes - 1))
        self.register_buffer("diagonal", torch.tensor(float(diagonal)))
        self.register_buffer("off_mask", ~torch.eye(num_classes, dtype=torch.bool))

    def matrix(self) -> torch.Tensor:
        off = F.softmax(self.off, dim=1) * (1 - self.diagonal)
        q = torch.zeros(self.off_mask.shape, device=off.device, dtype=off.dtype)
        q = q.masked_scatter(self.off_mask, off)  # row i: [off[i, :i], d, off[i, i:]]
        return q + torch.diag(self.diagonal.expand(len(q)))

    def forward(self, probs: torch.Tensor) -> torch.Tensor:
        return probs @ self.matrix()


@METHODS.register("dfnd")
class DFND(SamplingMethod):
    default_k = 128  # KDCI's K for sampled unlabeled data (KDCI paper, section 4.3)
    default_tau = 4.0  # DFND-train.py kdloss (T=4)
    #: selection and noise adaptation read only the teacher's outputs (a black box will do)
    teacher_needs = frozenset({"logits"})
    student_defaults = {"lr": 0.1, "weight_decay": 5e-4}  # DFND-train.py (SGD)
    student_source = ('DFND-train.py (SGD lr 0.1, momentum 0.9, weight decay 5e-4; step decay x0.1 at 40% and 80%, cosine here); quick: lr 0.01')
    loop_source = ('DFND-train.py: batch 256, 33 epochs of 600000/256 steps; quick: CPU-sized')
    defaults = {"pool_size": 20_000, "n_select": 2_000, "noise_weight": 1.0, "noise_diag": 0.0,
                "noise_lr": 0.001, "balanced": False}
    paper_params = {"pool_size": 1_281_167, "n_select": 600_000}
    #: DFND-train.py: int(40000 / num_select * 512) = 34 epochs, range(1, epoch) runs 33, of
    #: 600000 / 256 batches
    paper_loop = {"epochs": 33, "steps_per_epoch": 2344}
    sources = {
        "pool_size": f"{_REF} scores all of ImageNet's train split (paper preset: 1,281,167); here "
                     "the default wild pool is crops of 2 photographs",
        "n_select": f"{_REF} --num_select 600000 (paper preset); N scaled to the pool here",
        "noise_weight": f"{_REF} (KD + noise-adaptation NLL, unweighted)",
        "noise_diag": f"{_REF} fixes Q's diagonal to the teacher's test accuracy (0.9523 CIFAR-10); "
                      "0 = the run's teacher, scored on the test split",
        "noise_lr": f"{_REF} (Adam lr 0.001 on Q, no weight decay, no schedule)",
        "balanced": "option: keep the most confident n_select/C per predicted class instead",
    }
    ranges = {"noise_diag": (0.0, 0.999), "noise_lr": (1e-8, 10.0)}

    def __init__(self, ctx):
        super().__init__(ctx)
        diag = self.params["noise_diag"] or (ctx.teacher_accuracy or 0.0) / 100.0
        self.noise = NoiseAdaptation(ctx.info.num_classes, min(diag, 0.999)).to(ctx.device)
        self.noise_optimizer = torch.optim.Adam(self.noise.parameters(), lr=self.params["noise_lr"])
        self.noise_optimizer.param_groups[0]["name"] = "noise_adaptation"
        self.selection_scores: torch.Tensor | None = None

    def prepare(self):
        self.selected, logits = load_and_select(
            self.ctx, pool_size=self.params["pool_size"], n_select=self.params["n_select"],
            balanced=self.params["balanced"], desc="dfnd: scoring the wild pool")
        self.selection_scores = self_cross_entropy(logits)

    def student_losses(self, x, s_hat, t, weights=None):
        noisy_labels = t.argmax(1)
        adapted = self.noise(F.softmax(s_hat.float(), dim=1)).clamp_min(1e-8)
        nll = F.nll_loss(adapted.log(), noisy_labels, reduction="none")
        nll = nll.mean() if weights is None else (nll * weights).mean()
        return {"noise": self.params["noise_weight"] * nll}

    def student_optimizers(self):
        return [self.noise_optimizer]
