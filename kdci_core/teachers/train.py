"""Supervised training of a teacher on a labelled dataset (``teacher train``, the built-in one)."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..common.device import autocast
from ..common.errors import check_range
from ..common.progress import Progress, report
from ..data import ImageSet, load_dataset
from ..data.augment import random_shift
from ..models import build_model
from ..models.evaluation import evaluate, parameter_count
from ..models.weights import save_checkpoint
from .input_spec import write_sidecar


#: called after every epoch with its record: ``epoch``, ``epochs``, ``loss`` (mean training
#: cross-entropy), ``accuracy`` (percent of the training images right, as augmented), ``seconds``
EpochHook = Callable[[dict], None] | None


def _desc(epoch: int, epochs: int, last: dict | None) -> str:
    """The bar's words: the epoch under way, and the training loss and accuracy of the one before."""
    said = f"teacher training (epoch {epoch}/{epochs}"
    if last is not None:
        said += f"; loss {last['loss']:.3f}, acc {last['accuracy']:.1f}%"
    return said + ")"


def train_classifier(model: nn.Module, train: ImageSet, *, device: torch.device, epochs: int,
                     lr: float = 0.05, batch_size: int = 128, weight_decay: float = 5e-4,
                     seed: int = 0, augment: bool = True, progress: Progress = None,
                     on_epoch: EpochHook = None) -> list[dict]:
    """SGD + one-cycle schedule with light augmentation (random shifts, flips for RGB data);
    returns the epochs' records (see :data:`EpochHook`). The loss and the right answers are
    summed on the device and read once per epoch: no host sync per step."""
    epochs = check_range("epochs", epochs, low=1, high=10_000, integer=True)
    check_range("lr", lr, low=1e-7, high=10.0)
    batch_size = check_range("batch_size", batch_size, low=1, high=65_536, integer=True)
    gen = torch.Generator().manual_seed(seed)
    model.to(device).train()
    opt = torch.optim.SGD(model.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay,
                          nesterov=True)
    steps_per_epoch = max(1, (len(train) + batch_size - 1) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=epochs * steps_per_epoch)
    total, done, history = epochs * steps_per_epoch, 0, []
    for epoch in range(epochs):
        t0, seen = time.perf_counter(), 0
        loss_sum = torch.zeros((), device=device)
        right = torch.zeros((), device=device, dtype=torch.long)
        desc = _desc(epoch + 1, epochs, history[-1] if history else None)
        order = torch.randperm(len(train), generator=gen)
        for i in range(0, len(train), batch_size):
            idx = order[i:i + batch_size]
            if len(idx) < 2:  # BatchNorm needs two samples
                continue
            x, y = train.images[idx].to(device), train.labels[idx].to(device)
            if augment:
                x = random_shift(x, gen, flip=x.shape[1] == 3)
            with autocast(device):
                logits = model(x)
                loss = F.cross_entropy(logits, y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            loss_sum += loss.detach().float() * len(idx)
            right += (logits.detach().argmax(1) == y).sum()
            seen, done = seen + len(idx), done + 1
            report(progress, done, total, desc)
        record = {"epoch": epoch + 1, "epochs": epochs, "loss": loss_sum.item() / max(seen, 1),
                  "accuracy": 100.0 * right.item() / max(seen, 1), "seconds": time.perf_counter() - t0}
        history.append(record)
        if on_epoch is not None:
            on_epoch(record)
    model.eval()
    return history


def train_teacher(dataset: str, arch: str, *, epochs: int, out, data_root=None, seed: int = 0,
                  lr: float = 0.05, batch_size: int = 128, device: torch.device,
                  progress: Progress = None, image_size: int | None = None,
                  in_channels: int | None = None, on_epoch: EpochHook = None,
                  on_start: Callable[[str], None] | None = None) -> dict:
    """Train ``arch`` on ``dataset`` (at ``image_size`` px, ``in_channels``: None = the dataset's
    own), save it with its metadata, return the summary (with ``history``, the epochs' records).
    The metadata records its input spec (size, channels, normalisation), which a run with this
    teacher then follows (``input_spec``); a ``.pt``/``.pth`` file gets it in a sidecar JSON
    beside it. ``on_start`` hears what is about to be trained, once the data is loaded."""
    report(progress, 0, 1, f"teacher training (loading {dataset})")
    data = load_dataset(dataset, data_root, image_size=image_size, in_channels=in_channels)
    report(progress, 1, 1, f"teacher training (loading {dataset})")
    info = data.info
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=info.num_classes, in_channels=info.in_channels,
                        image_size=info.image_size)
    if on_start is not None:
        steps = max(1, (len(data.train) + batch_size - 1) // batch_size)
        on_start(f"training {arch} ({parameter_count(model):,} parameters) on {dataset}: "
                 f"{len(data.train):,} images at {info.image_size} px, {epochs} epoch(s) x {steps} "
                 f"steps of {batch_size}, on {device}")
    history = train_classifier(model, data.train, device=device, epochs=epochs, lr=lr,
                               batch_size=batch_size, seed=seed, progress=progress, on_epoch=on_epoch)
    report(progress, 0, 1, f"teacher evaluation (the {len(data.test):,} test images)")
    ev = evaluate(model, data.test, num_classes=info.num_classes, device=device)
    report(progress, 1, 1, "teacher evaluation")
    summary = {"arch": arch, "dataset": dataset, "num_classes": info.num_classes,
               "in_channels": info.in_channels, "image_size": info.image_size,
               "mean": list(info.mean), "std": list(info.std), "epochs": epochs,
               "seed": seed, "test_accuracy": ev.accuracy, "per_class_accuracy": ev.per_class,
               "parameters": parameter_count(model), "out": str(out)}
    save_checkpoint(model, out, metadata={k: v for k, v in summary.items() if k != "out"})
    summary["history"] = history
    if Path(out).suffix != ".safetensors":
        write_sidecar(out, summary)
    return summary
