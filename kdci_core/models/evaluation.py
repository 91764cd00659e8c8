"""Evaluation of any classifier (teachers and students alike): logits, accuracy, per-class scores."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn

from ..common.device import autocast
from ..data import ImageSet


@dataclass
class Evaluation:
    """Test-split scores of a classifier. Accuracies are percentages."""

    accuracy: float
    per_class: list = field(default_factory=list)
    confusion: np.ndarray | None = None
    predictions: np.ndarray | None = None

    def to_json(self) -> dict:
        return {"accuracy": self.accuracy, "per_class_accuracy": self.per_class}


@torch.no_grad()
def predict_logits(model: nn.Module, images: torch.Tensor, *, device: torch.device,
                   batch_size: int = 512) -> torch.Tensor:
    """Logits of ``model`` on ``images`` in eval mode, batched, returned on the CPU."""
    device = torch.device(device)
    was_training = model.training
    model.eval()
    outs = []
    for i in range(0, len(images), batch_size):
        with autocast(device):
            outs.append(model(images[i:i + batch_size].to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(outs) if outs else torch.empty(0)


def evaluate(model: nn.Module, data: ImageSet, *, num_classes: int, device: torch.device,
             batch_size: int = 512) -> Evaluation:
    """Accuracy, per-class accuracy and confusion matrix (rows: true class) on a labelled set."""
    logits = predict_logits(model, data.images, device=device, batch_size=batch_size)
    return evaluate_logits(logits, data.labels, num_classes=num_classes)


def evaluate_logits(logits: torch.Tensor, labels: torch.Tensor, *, num_classes: int) -> Evaluation:
    """The scores of :func:`evaluate` from logits already computed (``N x C``, any device)."""
    pred = logits.argmax(1).cpu().numpy()
    true = labels.cpu().numpy()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    support = confusion.sum(1)
    per_class = [float(100.0 * confusion[c, c] / support[c]) if support[c] else float("nan")
                 for c in range(num_classes)]
    return Evaluation(accuracy=float(100.0 * (pred == true).mean()), per_class=per_class,
                      confusion=confusion, predictions=pred)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
