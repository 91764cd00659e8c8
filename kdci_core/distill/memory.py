"""The memory of a run's largest step, estimated before the run exists, and the memory this
machine has free: a synthesis batch or a batch size that cannot fit is refused with the numbers
at ``--dry-run``, ``--detach`` and the Runs page, not by an allocation failure minutes later.

The estimate of one step, per image, is what autograd keeps for the backward through each network
the step differentiates, measured by running the architectures on PyTorch's ``meta`` device (no
memory, no weights: shapes only), as the increase from one image to two (the weights it keeps
are not per image):
- a synthesis step (a method with ``synth_batch``): the teacher, the method's generator (when it
  has ``nz`` and ``ngf``), the student (when its adversarial term ``adv`` is on), plus the images'
  own buffers (the images, their gradient, two Adam moments, a jittered copy: 5 x C x H x W x 4
  bytes), times ``synth_batch``;
- a student step: the student, plus the batch and its augmented copy, times ``batch_size``.
Measured by hand on the 2-core CPU VM (peak RSS over N of one round), one deepinv synthesis
round peaked at 0.7x this estimate (resnet18 teacher and student, 32 px) to 1.9x (lenet5 /
lenet5_half, 8 px: CPU convolution's unfold buffers). A step is refused when its estimate
exceeds ``USABLE`` of the free memory (the rest: the process itself, the data, the teacher, the
dictionary). Free memory: CUDA's ``mem_get_info`` for a CUDA device,
else ``MemAvailable`` of ``/proc/meminfo``; where neither can be read, nothing is refused. It is
this machine's: a run sent to a Ray cluster may land on a machine with more or less.
"""

from __future__ import annotations

from functools import lru_cache

import torch

from ..common.errors import InputError
from ..common.meminfo import available_bytes
from ..models import build_generator, build_model
from ..teachers.input_spec import spec_of

#: the share of the free memory a run's largest step may take
USABLE = 0.8
#: channels, image size and classes of each dataset as loaded natively (``folder``: 32 px by
#: default, RGB at most, 10 classes assumed: the last layer's width hardly matters); a run at its
#: teacher's input spec (``run_shape``) replaces the size and channels
SHAPES = {"digits": (1, 8, 10), "fashion-mnist": (1, 28, 10), "cifar10": (3, 32, 10),
          "cifar100": (3, 32, 100)}
OTHER_SHAPE = (3, 32, 10)


def _per_image(build, make_input) -> int | None:
    """Bytes autograd saves per image for ``build()``'s forward (one image vs two, on meta);
    None when a network cannot run on meta (an estimate never blocks a run by failing)."""
    try:
        with torch.device("meta"):
            net = build()
            return max(0, _saved(net, make_input, 2) - _saved(net, make_input, 1))
    except Exception:  # noqa: BLE001 - any failure of the estimate means: no estimate
        return None


def _saved(net, make_input, n: int) -> int:
    """Bytes of the tensors autograd keeps for the backward of one forward of ``n`` inputs."""
    total = 0

    def pack(t):
        nonlocal total
        total += t.numel() * t.element_size()
        return t
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        net(make_input(n))
    return total


@lru_cache(maxsize=256)
def classifier_bytes(arch: str, channels: int, size: int, classes: int) -> int | None:
    return _per_image(lambda: build_model(arch, num_classes=classes, in_channels=channels, image_size=size),
                      lambda n: torch.empty(n, channels, size, size, device="meta", requires_grad=True))


@lru_cache(maxsize=256)
def generator_bytes(nz: int, ngf: int, channels: int, size: int) -> int | None:
    return _per_image(lambda: build_generator(nz=nz, img_size=size, nc=channels, ngf=ngf),
                      lambda n: torch.empty(n, nz, device="meta", requires_grad=True))


def run_shape(cfg) -> tuple[int, int, int]:
    """(channels, size, classes) of a run's images: the teacher's input spec where it sets them
    (``teachers.input_spec``), else the dataset's native ones."""
    channels, size, classes = SHAPES.get(cfg.dataset, OTHER_SHAPE)
    spec = spec_of(cfg)
    return spec.in_channels or channels, spec.image_size or size, classes


def step_estimates(cfg, method_cls, params: dict, teacher_arch: str) -> list[tuple[str, int, int, str]]:
    """``(what, batch, bytes per image, the setting that sets the batch)`` of the run's steps
    (a step whose networks cannot be measured is left out)."""
    channels, size, classes = run_shape(cfg)
    image = channels * size * size * 4
    student = classifier_bytes(cfg.student, channels, size, classes)
    out = []
    if student is not None:
        out.append((f"a student step ({cfg.student})", cfg.batch_size, student + 2 * image, "--batch-size"))
    if "synth_batch" in params:
        parts = [(f"teacher {teacher_arch}", classifier_bytes(teacher_arch, channels, size, classes))]
        if "nz" in params and "ngf" in params:
            parts.append(("generator", generator_bytes(params["nz"], params["ngf"], channels, size)))
        if params.get("adv", 0) > 0:
            parts.append((f"student {cfg.student}", student))
        if all(b is not None for _, b in parts):
            out.append((f"a {method_cls.name} synthesis step (through the {', '.join(n for n, _ in parts)})",
                        params["synth_batch"], sum(b for _, b in parts) + 5 * image,
                        f"{method_cls.name}.synth_batch"))
    return out


def free_memory(device: str) -> tuple[int, str] | None:
    """Bytes free for a run on ``device`` ('auto', 'cpu', 'cuda[:N]') and where that was read;
    None when it cannot be read here (no such device, no /proc/meminfo)."""
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if str(device).startswith("cuda"):
        if not torch.cuda.is_available():
            return None
        free, _ = torch.cuda.mem_get_info(torch.device(device))
        return int(free), f"free on {device}"
    available = available_bytes()
    return None if available is None else (available, "available (/proc/meminfo)")


def _gb(n: float) -> str:
    return f"{n / 2**30:.1f} GiB" if n >= 2**30 else f"{n / 2**20:.0f} MiB"


def check_memory(cfg, steps: list[tuple[str, int, int, str]]) -> None:
    """Refuse a run whose largest step (``steps``: :func:`step_estimates`) cannot fit in
    ``USABLE`` of the free memory."""
    free = free_memory(cfg.device)
    if free is None:
        return
    budget = free[0] * USABLE
    for what, batch, per, setting in steps:
        if batch * per > budget:
            raise InputError(
                f"{setting}: {batch} images do not fit: {what} needs about {_gb(batch * per)} "
                f"({batch} x {per / 1024:.1f} KiB per image), this machine has {_gb(free[0])} "
                f"{free[1]}, of which a run's step may use {USABLE:.0%} ({_gb(budget)}); "
                f"give {setting} {max(1, int(budget // per))} or less")
