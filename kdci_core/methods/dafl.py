"""DAFL (Chen et al., ICCV 2019, "Data-Free Learning of Student Networks"), as its code computes
it (huawei-noah Efficient-Computing, DAFL/DAFL-train.py).

A generator G(z) (DAFL's own: Tanh, then BatchNorm without affine) is trained against the frozen
teacher with three terms on the teacher's response to G(z):
- ``oh``: cross-entropy of the teacher's logits to their own argmax (confident, one-hot outputs);
- ``act``: minus the mean absolute penultimate activation of the teacher (strong features);
- ``balance``: the information-entropy term on the batch-mean class distribution, in log10 as
  DAFL's code takes it (every class).
Each iteration, the generator's batch feeds both updates: G takes its Adam step on that batch's
terms, and the student trains by the loop's KD (T=1: DAFL's ``kdloss`` has no temperature) on the
same images, detached. With KDCI on, the dictionary is rebuilt from each such mini-batch (K = 8).
"""

from __future__ import annotations

import torch

from ..common.progress import report
from .registry import METHODS
from .synthesis import GeneratorMethod, teacher_objectives

# Terms of teacher_objectives that DAFL uses (the rest are other methods').
DAFL_TERMS = ("oh", "act", "balance")
_README = "DAFL README, CIFAR-10 command"


@METHODS.register("dafl")
class DAFL(GeneratorMethod):
    default_k = 8  # KDCI's K for a GAN mini-batch (KDCI paper, section 4.3)
    #: DAFL-train.py: torch.optim.Adam(generator.parameters(), lr=opt.lr_G), Adam's default betas
    generator_betas = (0.9, 0.999)
    default_tau = 1.0  # DAFL's kdloss has no temperature (DataFree's DAFL also distils at T=1)
    #: the activation term reads the teacher's penultimate features; G trains through it
    teacher_needs = frozenset({"logits", "features", "gradients"})
    generator_output = "tanh-bn"
    student_defaults = {"lr": 0.1, "weight_decay": 5e-4}  # DAFL-train.py, CIFAR (SGD)
    student_source = ('DAFL-train.py CIFAR (SGD lr 0.1, momentum 0.9, weight decay 5e-4; step decay x0.1 at 40% and 80%, cosine here); quick: lr 0.01')
    loop_source = ('DAFL README CIFAR-10: batch 1024, 2000 epochs of 120 iterations; quick: CPU-sized')
    defaults = {
        "synth_batch": 128, "g_steps": 1, "synth_every": 1, "lr_g": 0.0001, "nz": 100, "ngf": 64,
        "oh": 1.0, "act": 0.1, "balance": 5.0,
    }
    paper_params = {"synth_batch": 1024, "lr_g": 0.02, "nz": 1000, "oh": 0.05, "act": 0.01,
                    "balance": 5.0}
    #: DAFL's CIFAR-10 schedule: batch 1024, 2000 epochs of 120 iterations
    paper_loop = {"batch_size": 1024, "epochs": 2000, "steps_per_epoch": 120}
    sources = {
        "oh": f"DAFL-train.py default (--oh 1, MNIST); {_README}: 0.05 (paper preset)",
        "act": f"DAFL-train.py default (--a 0.1, MNIST); {_README}: 0.01 (paper preset)",
        "balance": "DAFL-train.py default (--ie 5), on the entropy in log10 as DAFL's code takes it",
        "g_steps": "DAFL: one generator step per student step (0: G stays random, an ablation)",
        "synth_every": "DAFL: generator and student update together every iteration",
        "synth_batch": "DAFL uses 512 (MNIST) / 1024 (CIFAR, paper preset); 128 here for a CPU "
                       "(= the quick preset's student batch; >= the K default of 8)",
        "lr_g": f"chosen here (DAFL's code: 0.2 MNIST / 0.02 CIFAR, {_README}, paper preset); on "
                "8x8 digits larger rates collapse G onto few teacher-confident patterns",
        "nz": f"DAFL's MNIST latent size (--latent_dim 100); {_README}: 1000 (paper preset)",
        "ngf": "DAFL's generator width (128 then 64 channels = 2*ngf, ngf)",
    }

    ranges = {"g_steps": (0, 10_000)}  # 0: a random, untrained generator (ablation)

    def pool_capacity(self):
        return self.params["synth_batch"]  # the student sees only G's newest batch

    def weights(self) -> dict:
        return {k: self.params[k] for k in DAFL_TERMS}

    def generator_loss(self, z: torch.Tensor):
        """DAFL's generator objective on G(z): weighted oh + act + balance (teacher frozen);
        returns (total, weighted terms, teacher logits) and, last, the images G(z)."""
        images = self.generator(z)
        return (*teacher_objectives(self.ctx.teacher, images, weights=self.weights(),
                                    balance_base=10.0), images)

    def synthesize(self, student):
        """``g_steps`` generator updates on fresh codes; the student trains on the batch of the
        last one (DAFL: one batch feeds the generator's and the student's update), detached."""
        n, steps = self.params["synth_batch"], self.params["g_steps"]
        self.generator.train()
        if steps == 0:
            with torch.no_grad():
                return self.generator(self.latent(n)).detach()
        for it in range(steps):
            loss, _, _, images = self.generator_loss(self.latent(n))
            self.g_optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.g_optimizer.step()
            report(self.ctx.progress, it + 1, steps, "dafl generator steps")
        return images.detach()

    def sample(self, batch_size):
        """The newest batch itself (shuffled); drawn with replacement only if more is asked for."""
        data = self.pool.data
        if batch_size <= len(data):
            idx = torch.randperm(len(data), generator=self.rng)[:batch_size]
        else:
            idx = torch.randint(0, len(data), (batch_size,), generator=self.rng)
        return data[idx.to(data.device)]
