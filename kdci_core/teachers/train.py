"""Supervised training of a teacher on a labelled dataset (``teacher train``, the built-in one)."""

from __future__ import annotations

from pathlib import Path

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


def train_teacher(dataset: str, arch: str, *, epochs: int, out, data_root=None, seed: int = 0,
                  lr: float = 0.05, batch_size: int = 128, device: torch.device,
                  progress: Progress = None, image_size: int | None = None,
                  in_channels: int | None = None) -> dict:
    """Train ``arch`` on ``dataset`` (at ``image_size`` px, ``in_channels``: None = the dataset's
    own), save it with its metadata, return the summary. The metadata records its input spec
    (size, channels, normalisation), which a run with this teacher then follows
    (``input_spec``); a ``.pt``/``.pth`` file gets it in a sidecar JSON beside it."""
    data = load_dataset(dataset, data_root, image_size=image_size, in_channels=in_channels)
    info = data.info
    torch.manual_seed(seed)
    model = build_model(arch, num_classes=info.num_classes, in_channels=info.in_channels,
                        image_size=info.image_size)
    train_classifier(model, data.train, device=device, epochs=epochs, lr=lr, batch_size=batch_size,
                     seed=seed, progress=progress)
    ev = evaluate(model, data.test, num_classes=info.num_classes, device=device)
    summary = {"arch": arch, "dataset": dataset, "num_classes": info.num_classes,
               "in_channels": info.in_channels, "image_size": info.image_size,
               "mean": list(info.mean), "std": list(info.std), "epochs": epochs,
               "seed": seed, "test_accuracy": ev.accuracy, "per_class_accuracy": ev.per_class,
               "parameters": parameter_count(model), "out": str(out)}
    save_checkpoint(model, out, metadata={k: v for k, v in summary.items() if k != "out"})
    if Path(out).suffix != ".safetensors":
        write_sidecar(out, summary)
    return summary
