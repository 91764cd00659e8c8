"""Supervised training and evaluation of classifiers (teachers; students are scored here too)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .data import ImageSet
from .device import autocast
from .errors import check_range
from .progress import Progress, report


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
    pred = predict_logits(model, data.images, device=device, batch_size=batch_size).argmax(1).numpy()
    true = data.labels.numpy()
    confusion = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(confusion, (true, pred), 1)
    support = confusion.sum(1)
    per_class = [float(100.0 * confusion[c, c] / support[c]) if support[c] else float("nan")
                 for c in range(num_classes)]
    return Evaluation(accuracy=float(100.0 * (pred == true).mean()), per_class=per_class,
                      confusion=confusion, predictions=pred)


def train_classifier(model: nn.Module, train: ImageSet, *, device: torch.device, epochs: int,
                     lr: float = 0.05, batch_size: int = 128, weight_decay: float = 5e-4,
                     seed: int = 0, augment: bool = True, progress: Progress = None) -> nn.Module:
    """SGD + cosine schedule with light augmentation (random shifts, flips for RGB data)."""
    epochs = check_range("epochs", epochs, low=1, high=10_000, integer=True)
    check_range("lr", lr, low=1e-7, high=10.0)
    batch_size = check_range("batch_size", batch_size, low=1, high=65_536, integer=True)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay,
                          nesterov=True)
    steps_per_epoch = max(1, (len(train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    total, done = epochs * steps_per_epoch, 0
    for epoch in range(epochs):
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x, y = train.images[idx].to(device), train.labels[idx].to(device)
            if augment:
                x = random_shift(x, gen, flip=x.shape[1] == 3)
            with autocast(device):
                loss = F.cross_entropy(model(x), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            done += 1
            report(progress, done, total, f"teacher training (epoch {epoch + 1}/{epochs})")
    model.eval()
    return model


def random_shift(x: torch.Tensor, gen: torch.Generator, *, flip: bool, max_frac: float = 0.125):
    """Batch-wise random translation (pad by reflection, crop) and optional horizontal flip."""
    h, w = x.shape[-2:]
    ph, pw = max(1, int(h * max_frac)), max(1, int(w * max_frac))
    padded = F.pad(x, (pw, pw, ph, ph), mode="reflect" if min(h, w) > max(ph, pw) else "replicate")
    dy = int(torch.randint(0, 2 * ph + 1, (1,), generator=gen))
    dx = int(torch.randint(0, 2 * pw + 1, (1,), generator=gen))
    out = padded[..., dy:dy + h, dx:dx + w]
    if flip and bool(torch.rand(1, generator=gen) < 0.5):
        out = out.flip(-1)
    return out


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
