"""DAFL (Chen et al., ICCV 2019, "Data-Free Learning of Student Networks").

A generator G(z) is trained against the frozen teacher (the teacher acts as a fixed
discriminator) with three terms on the teacher's response to G(z):
- ``oh``: cross-entropy of the teacher's logits to their own argmax (confident, one-hot outputs);
- ``act``: minus the mean absolute penultimate activation of the teacher (strong features);
- ``balance``: information-entropy term on the batch-mean class distribution (every class).
Generator and student are updated alternately: every ``synth_every`` student steps the
generator takes ``g_steps`` Adam steps and a fresh batch G(z) is drawn from the updated G.
The student trains by the loop's KD on that newest batch only (no replay of older batches), and
with KDCI on the dictionary is rebuilt from each such mini-batch (KDCI.md: K = 8 for DAFL).
"""

from __future__ import annotations

import torch

from ..common.progress import report
from .registry import METHODS
from .synthesis import GeneratorMethod, teacher_objectives

# Terms of teacher_objectives that DAFL uses (the rest are other methods').
DAFL_TERMS = ("oh", "act", "balance")


@METHODS.register("dafl")
class DAFL(GeneratorMethod):
    default_k = 8  # KDCI's K for a GAN mini-batch (KDCI paper, section 4.3)
    default_tau = 20.0  # DataFree's DAFL scripts (--T 20); DAFL's own code uses T=1 (worse here)
    defaults = {
        "synth_batch": 128, "g_steps": 1, "synth_every": 1, "lr_g": 0.0001, "nz": 100, "ngf": 64,
        "oh": 1.0, "act": 0.1, "balance": 5.0,
    }
    sources = {
        "oh": "DAFL official code default (--oh 1)",
        "act": "DAFL official code default (--a 0.1)",
        "balance": "DAFL official code default (--ie 5); note DAFL's code takes the entropy in "
                   "log10, ours in nats, so the same weight is ln(10)~2.3x stronger here",
        "g_steps": "DAFL: one generator step per student step (0: G stays random, an ablation)",
        "synth_every": "DAFL: generator and student alternate every iteration",
        "synth_batch": "DAFL uses 512 (MNIST) / 1024 (CIFAR); 128 here for a CPU (= the loop's "
                       "default student batch; >= the K default of 8)",
        "lr_g": "chosen here (DAFL's code: 0.2 MNIST / 0.02 CIFAR; DataFree: 1e-3); on 8x8 "
                "digits larger rates collapse G onto few teacher-confident patterns",
        "nz": "DAFL's MNIST latent size (--latent_dim 100)",
        "ngf": "DAFL's generator width (128 then 64 channels = 2*ngf, ngf)",
    }

    ranges = {"g_steps": (0, 10_000)}  # 0: a random, untrained generator (ablation)

    def pool_capacity(self):
        return self.p["synth_batch"]  # the student sees only G's newest batch

    def generator_loss(self, z: torch.Tensor):
        """DAFL's generator objective on G(z): weighted oh + act + balance (teacher frozen)."""
        weights = {k: self.p[k] for k in DAFL_TERMS}
        return teacher_objectives(self.ctx.teacher, self.generator(z), weights=weights)

    def synthesize(self, student):
        """``g_steps`` generator updates, then a new batch from the updated generator."""
        n, steps = self.p["synth_batch"], self.p["g_steps"]
        self.generator.train()
        for it in range(steps):
            loss, _, _ = self.generator_loss(self.latent(n))
            self.g_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.g_optimizer.step()
            report(self.ctx.progress, it + 1, steps, "dafl generator steps")
        with torch.no_grad():
            return self.generator(self.latent(n)).detach()

    def sample(self, batch_size):
        """The newest batch itself (shuffled); drawn with replacement only if more is asked for."""
        data = self.pool.data
        if batch_size <= len(data):
            idx = torch.randperm(len(data), generator=self.gen)[:batch_size]
        else:
            idx = torch.randint(0, len(data), (batch_size,), generator=self.gen)
        return data[idx.to(data.device)]
