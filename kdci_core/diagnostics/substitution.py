"""Make a method's substitution data without a full run, to look at its shift before distilling.

Generation methods synthesise against the student being trained (adversarial terms, DAFL's
alternation), so their data are only meaningful inside the loop: we run the real loop
(``Distiller.fit``) for ``rounds`` synthesis rounds and keep every new batch, tagged with its
round. Sampling methods select once: their data are the selection (for MosaicKD the selected
wild images; its generator's images are not part of what KDCI clusters). Either way the data
arrive through the loop's ``on_substitution`` event, kept by :class:`SubstitutionCollector`,
which stops the loop once it has enough.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, replace

import torch

from ..common.errors import check_range
from ..common.progress import Progress, report
from ..data import DatasetInfo, ImageSet
from ..distill import Callback, DistillConfig, Distiller
from ..models.evaluation import predict_logits

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


class SubstitutionCollector(Callback):
    """Keeps every batch of substitution data the loop sees, tagged with its round, and stops the
    loop after ``rounds`` of them (a sampling method's selection is one round, made before any
    student step, so such a loop takes none)."""

    def __init__(self, rounds: int, *, progress: Progress = None, desc: str = "synthesis rounds"):
        self.rounds, self.progress, self.desc = rounds, progress, desc
        self.batches: list[torch.Tensor] = []
        self.steps = 0
        self.sampling = False

    def on_fit_start(self, distiller) -> None:
        self.sampling = distiller.method.kind == "sampling"

    def on_substitution(self, step: int, images: torch.Tensor) -> None:
        self.batches.append(images.detach().float().cpu())
        if not self.sampling:
            report(self.progress, len(self.batches), self.rounds, self.desc)

    def on_step_end(self, step: int, metrics: dict) -> None:
        self.steps = step + 1

    @property
    def should_stop(self) -> bool:
        return len(self.batches) >= (1 if self.sampling else self.rounds)

    def images_and_rounds(self) -> tuple[torch.Tensor, torch.Tensor]:
        tags = [torch.full((len(b),), i, dtype=torch.long) for i, b in enumerate(self.batches)]
        return torch.cat(self.batches), torch.cat(tags)


def collect_substitution_data(cfg: DistillConfig, *, rounds: int = DEFAULT_ROUNDS,
                              progress: Progress = None) -> tuple[SubstitutionData, Reference]:
    """Run ``cfg``'s method just long enough to get its substitution data (KDCI as configured)."""
    rounds = check_range("rounds", rounds, low=1, high=10_000, integer=True)
    started = time.time()
    # 1000 x 10^6 planned steps: the cosine schedule stays flat over the few steps taken, and no
    # epoch ends (the collector stops the loop long before)
    cfg = replace(cfg, epochs=1000, steps_per_epoch=10**6)
    d = Distiller(cfg, progress=progress)
    collector = SubstitutionCollector(rounds, progress=progress, desc=f"{cfg.method}: synthesis rounds")
    d.fit(callbacks=[collector])
    images, tags = collector.images_and_rounds()
    logits = predict_logits(d.teacher.model, images, device=d.device).float().cpu()
    data = SubstitutionData(method=cfg.method, kind=d.method.kind, images=images, rounds=tags,
                            teacher_logits=logits, info=d.info, teacher_arch=d.teacher.arch,
                            student_steps=collector.steps, seconds=time.time() - started)
    return data, Reference(test=d.data.test, train=d.data.train, info=d.info, teacher=d.teacher.model, device=d.device)
