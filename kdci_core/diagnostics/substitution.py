"""Make a method's substitution data without a full run, to look at its shift before distilling.

Generation methods synthesise against the student being trained (adversarial terms, DAFL's
alternation), so their data are only meaningful inside the loop: we run the real loop
(``Distiller.step``) for ``rounds`` synthesis rounds and keep every new batch, tagged with its
round. Sampling methods select once: their data are the selection (for MosaicKD the selected
wild images; its generator's images are not part of what KDCI clusters).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from ..config import DistillConfig
from ..data import DatasetInfo, ImageSet
from ..errors import check_range
from ..progress import Progress, report
from ..training import predict_logits

#: synthesis rounds collected by default (generation methods)
DEFAULT_ROUNDS = 4


@dataclass
class SubstitutionData:
    """Substitution images (normalised, CPU) with the round that made each and the teacher's logits."""

    method: str
    kind: str
    images: torch.Tensor
    rounds: torch.Tensor
    teacher_logits: torch.Tensor
    info: DatasetInfo
    teacher_arch: str
    student_steps: int
    seconds: float

    @property
    def pseudo_labels(self) -> torch.Tensor:
        return self.teacher_logits.argmax(1)

    @property
    def num_rounds(self) -> int:
        return int(self.rounds.max()) + 1 if len(self.rounds) else 0

    def summary(self) -> dict:
        return {"method": self.method, "kind": self.kind, "n_images": len(self.images),
                "image_shape": list(self.images.shape[1:]), "rounds": self.num_rounds,
                "student_steps": self.student_steps, "seconds": round(self.seconds, 3)}


@dataclass
class Reference:
    """What the shift is measured against (the dataset's test split), and the teacher and device."""

    test: ImageSet
    train: ImageSet
    info: DatasetInfo
    teacher: torch.nn.Module
    device: torch.device


def collect_substitution_data(cfg: DistillConfig, *, rounds: int = DEFAULT_ROUNDS,
                              progress: Progress = None) -> tuple[SubstitutionData, Reference]:
    """Run ``cfg``'s method just long enough to get its substitution data (KDCI as configured)."""
    from ..distill import Distiller

    rounds = check_range("rounds", rounds, low=1, high=10_000, integer=True)
    started = time.time()
    cfg = replace(cfg, epochs=1, steps_per_epoch=1)  # the schedule is ours; validation needs >= 1
    d = Distiller(cfg, progress=progress)
    d.method.prepare()
    batches, tags, steps = [], [], 0
    if d.method.kind == "generation":
        def keep(step: int, images: torch.Tensor) -> None:
            batches.append(images.detach().float().cpu())
            tags.append(torch.full((len(images),), len(batches) - 1, dtype=torch.long))
            report(progress, len(batches), rounds, f"{cfg.method}: synthesis rounds")

        d.on_substitution = keep
        d.total_steps = 10**9  # keep the cosine schedule flat over our short loop
        d.scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(d.optimizer, d.total_steps)
        while len(batches) < rounds:
            d.step(steps)
            steps += 1
    else:
        selected = d.method.substitution_data().detach().float().cpu()
        batches, tags = [selected], [torch.zeros(len(selected), dtype=torch.long)]
    images = torch.cat(batches)
    logits = predict_logits(d.teacher.model, images, device=d.device).float().cpu()
    data = SubstitutionData(method=cfg.method, kind=d.method.kind, images=images,
                            rounds=torch.cat(tags), teacher_logits=logits, info=d.info,
                            teacher_arch=d.teacher.arch, student_steps=steps,
                            seconds=time.time() - started)
    return data, Reference(test=d.data.test, train=d.data.train, info=d.info, teacher=d.teacher.model, device=d.device)
