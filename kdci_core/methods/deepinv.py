"""DeepInversion (Yin et al., CVPR 2020): optimise the pixels of a batch directly.

Loss per synthesis step: ``bn`` * BatchNorm-statistics matching (forward hooks on the teacher)
+ ``oh`` * cross-entropy to sampled target classes + ``adv`` * (- teacher/student Jensen-Shannon
divergence: seek inputs where they disagree) + ``tv`` * total variation + ``l2`` * l2 prior.
Images stay tensors in a pool; the student samples from the pool.
"""

from __future__ import annotations

import torch

from ..common.progress import report
from ..data.augment import jitter_flip
from .base import GenerationMethod
from .losses import bn_statistics
from .registry import METHODS
from .synthesis import teacher_objectives


@METHODS.register("deepinv")
class DeepInversion(GenerationMethod):
    default_k = 32  # KDCI's K for a model-inversion mini-batch (KDCI paper, section 4.3)
    default_tau = 20.0
    defaults = {
        "synth_batch": 64, "g_steps": 100, "lr_g": 0.1, "synth_every": 25, "pool_size": 10_000,
        "bn": 10.0, "oh": 1.0, "adv": 1.0, "tv": 0.05, "l2": 0.001,
    }
    sources = {
        "bn": "DataFree deepinv script (--bn 10)", "oh": "DataFree (--oh 1)",
        "adv": "DataFree (--adv 1)", "lr_g": "DataFree (--lr_g 0.1, Adam betas 0.5/0.99)",
        "g_steps": "DataFree uses 1000 on CIFAR; scaled to 100 for CPU-sized inputs",
        "synth_every": "DataFree: one synthesis round per kd_steps=400 student steps; 25 here",
        "tv": "chosen here (mean l2 TV, size-independent)", "l2": "chosen here (mean square)",
        "synth_batch": "DataFree uses 256; 64 here (>= the K default of 32)",
        "pool_size": "chosen here (in-memory ring buffer)",
    }

    def synthesize(self, student):
        ctx, p, info = self.ctx, self.p, self.ctx.info
        n = p["synth_batch"]
        x = torch.randn(n, info.in_channels, info.image_size, info.image_size, generator=self.gen)
        x = x.to(ctx.device).requires_grad_(True)
        targets = self._randint(info.num_classes, n).to(ctx.device)
        opt = torch.optim.Adam([x], lr=p["lr_g"], betas=(0.5, 0.99))
        flip = info.in_channels == 3
        with bn_statistics(ctx.teacher) as hooks:
            for it in range(p["g_steps"]):
                xj = jitter_flip(x, self.gen, flip=flip)
                loss, _, _ = teacher_objectives(ctx.teacher, xj, weights=p, hooks=hooks,
                                                targets=targets, student=student, tau=ctx.tau)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                with torch.no_grad():
                    x.copy_(self.clip(x))
                report(ctx.progress, it + 1, p["g_steps"], f"deepinv synthesis (round {self.rounds + 1})")
        return x.detach()
