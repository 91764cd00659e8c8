"""DeepInversion (Yin et al., CVPR 2020): optimise the pixels of a batch directly.

Loss per synthesis step, as DataFree's ``DeepInvSyntheiszer`` computes it: ``bn`` * BatchNorm-
statistics matching (forward hooks on the teacher, the unsquared L2 distance of the batch's
mean and variance to the running ones, summed over layers) + ``oh`` * cross-entropy to sampled
target classes + ``adv`` * (- the clamped Jensen-Shannon divergence at T=3 between the raw
student and the teacher: seek inputs where they disagree) on the jittered batch, + ``tv`` * the
L1 total variation over four directions and ``l2`` * an l2 prior on the un-jittered batch.
Adam on the pixels (betas 0.5/0.99), clipped to the valid image range after every step; the
final iterate is kept (DataFree's "best" batch aliases the live tensor, so it is the final one).
Images stay tensors in a pool; the student samples from the pool (through the loop's
augmentation, as DataFree's pool through the dataset's train transform).
"""

from __future__ import annotations

import torch

from ..common.progress import report
from ..data.augment import jitter_flip
from .base import GenerationMethod
from .losses import bn_statistics
from .registry import METHODS
from .synthesis import teacher_objectives

_DF = "DataFree scripts/deepinv/deepinv_cifar10_wrn402_wrn161.sh"


@METHODS.register("deepinv")
class DeepInversion(GenerationMethod):
    default_k = 32  # KDCI's K for a model-inversion mini-batch (KDCI paper, section 4.3)
    default_tau = 20.0
    #: BN-statistics matching (hooks on the teacher) and pixels optimised through it
    teacher_needs = frozenset({"logits", "batchnorm", "gradients"})
    defaults = {
        "synth_batch": 64, "g_steps": 100, "lr_g": 0.1, "synth_every": 25, "pool_size": 10_000,
        "bn": 10.0, "oh": 1.0, "adv": 1.0, "tv": 0.001, "l2": 0.0,
    }
    paper_params = {"synth_batch": 256, "g_steps": 1000, "synth_every": 400, "pool_size": 51_200}
    sources = {
        "bn": f"{_DF} (--bn 10)", "oh": f"{_DF} (--oh 1)",
        "adv": f"{_DF} (--adv 1) on DataFree's clamped JS at T=3 (criterions.jsdiv)",
        "lr_g": f"{_DF} (--lr_g 0.1, Adam betas 0.5/0.99)",
        "g_steps": f"{_DF} uses 1000 (paper preset); 100 here for CPU-sized inputs",
        "synth_every": f"{_DF}: one round per kd_steps=400 student steps (paper preset); 25 here",
        "tv": "DataFree datafree_kd.py (tv=0.001, L1 over four directions)",
        "l2": "DataFree datafree_kd.py (l2=0.0: off)",
        "synth_batch": f"{_DF} uses 256 (paper preset); 64 here (>= the K default of 32)",
        "pool_size": "DataFree keeps every image (paper preset: 200 rounds x 256); a ring buffer here",
    }

    def synthesize(self, student):
        ctx, p, info = self.ctx, self.params, self.ctx.info
        n = p["synth_batch"]
        x = torch.randn(n, info.in_channels, info.image_size, info.image_size, generator=self.rng)
        x = x.to(ctx.device).requires_grad_(True)
        targets = self._randint(info.num_classes, n).to(ctx.device)
        opt = torch.optim.Adam([x], lr=p["lr_g"], betas=(0.5, 0.99))
        flip = info.in_channels == 3
        with bn_statistics(ctx.teacher) as hooks:
            for it in range(p["g_steps"]):
                xj = jitter_flip(x, self.rng, flip=flip)
                loss, _, _ = teacher_objectives(ctx.teacher, xj, weights=p, hooks=hooks,
                                                targets=targets, student=student, adv="clamped-js",
                                                prior_images=x)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    x.copy_(self.clip(x))
                report(ctx.progress, it + 1, p["g_steps"], f"deepinv synthesis (round {self.rounds + 1})")
        return x.detach()
