"""Run presets: ``quick`` (CPU-sized, the embedded default's scale) and ``paper`` (the reference
scripts' CIFAR settings, for users with a GPU and CIFAR).

A preset fills only the config fields left unset (None); anything given explicitly wins. The
loop-level values are here; each method declares its own side beside its code: the reference
student optimiser (``student_defaults``) and its ``paper_params`` (synthesis batch, iterations).
docs/METHODS.md lists every value with its source and why ``quick`` differs.
"""

from __future__ import annotations

from ..common.errors import InputError

PRESETS = ("quick", "paper")

#: loop settings per preset. paper: DataFree/Fast-Datafree's datafree_kd.py and MosaicKD's
#: kd_mosaic.py (batch 256, 200 epochs of kd_steps=ep_steps=400 student steps)
LOOP = {
    "quick": {"epochs": 10, "steps_per_epoch": 50, "batch_size": 128},
    "paper": {"epochs": 200, "steps_per_epoch": 400, "batch_size": 256},
}
#: the quick preset's student learning rate for every method: the references' 0.1-0.2 made the
#: tiny lenet5_half student collapse on 8-28 px data in our first runs (README, "Choices")
QUICK_LR = 0.01
#: the students of the paper's Table 1 for each of its teachers (CIFAR-10/100)
TABLE1_STUDENT = {"resnet34": "resnet18", "vgg11_bn": "resnet18", "wrn_40_2": "wrn_16_2",
                  "lenet5": "lenet5_half"}


def preset_defaults(preset: str, method_cls, teacher_arch: str | None) -> dict:
    """The config values ``preset`` gives a run of ``method_cls`` (fields of DistillConfig, and
    ``method_params`` for the method's own overrides)."""
    if preset not in PRESETS:
        raise InputError(f"--preset: expected one of {', '.join(PRESETS)}, found {preset!r}")
    optim = method_cls.student_defaults
    loop = LOOP[preset] | (method_cls.paper_loop if preset == "paper" else {})
    values = dict(loop, weight_decay=optim["weight_decay"])
    if preset == "quick":
        return values | {"lr": QUICK_LR, "student": "lenet5_half", "method_params": {}}
    student = TABLE1_STUDENT.get(teacher_arch or "lenet5")
    return values | {"lr": optim["lr"], "student": student, "method_params": dict(method_cls.paper_params)}
