"""Presets (quick, paper), the student's optimiser groups, and the student-side augmentation: the
student's batch is augmented (and the teacher labels that same batch), the dictionary's data is
not; MosaicKD augments only its OOD half, as its reference."""

from __future__ import annotations

import pytest
import torch

from kdci_core.data.augment import CropFlip
from kdci_core.distill import Callback, DistillConfig, Distiller
from kdci_core.distill.presets import LOOP, QUICK_LR
from kdci_core.errors import InputError
from kdci_core.methods import METHODS
from tests.helpers import tiny_config


@pytest.mark.parametrize("method", METHODS.names())
def test_paper_preset_validates_with_the_references_settings(method, monkeypatch):
    from kdci_core.distill import memory

    # the memory of a 24 GiB GPU, not this machine's: the paper presets must fit in one
    monkeypatch.setattr(memory, "free_memory", lambda device: (24 * 2**30, "a 24 GiB GPU"))
    cls = METHODS.get(method)
    cfg = DistillConfig(teacher="t.safetensors", teacher_arch="resnet34", dataset="cifar10",
                        method=method, preset="paper").resolve()
    loop = LOOP["paper"] | cls.paper_loop
    assert (cfg.epochs, cfg.steps_per_epoch, cfg.batch_size) == (
        loop["epochs"], loop["steps_per_epoch"], loop["batch_size"])
    assert cfg.lr == cls.student_defaults["lr"] and cfg.weight_decay == cls.student_defaults["weight_decay"]
    assert cfg.student == "resnet18" and cfg.kdci_weight_decay == cfg.weight_decay  # Table 1's pair
    assert cfg.method_params == cls.paper_params
    cls.resolve_params(cfg.method_params)  # every paper value is a valid parameter
    again = DistillConfig.from_dict(cfg.to_dict()).resolve()
    assert again.to_dict() == cfg.to_dict()  # resolved once, stored, reproduced


def test_explicit_values_override_the_preset():
    cfg = DistillConfig(method="deepinv", preset="paper", epochs=3, lr=0.05, kdci_weight_decay=0.0,
                        method_params={"g_steps": 7}).resolve()
    assert (cfg.epochs, cfg.steps_per_epoch, cfg.lr, cfg.kdci_weight_decay) == (3, 400, 0.05, 0.0)
    assert cfg.method_params["g_steps"] == 7 and cfg.method_params["synth_batch"] == 256
    assert cfg.student == "lenet5_half"  # the built-in teacher's pair
    with pytest.raises(InputError, match="--student"):
        DistillConfig(teacher="t.pt", teacher_arch="mobilenet_v2", method="dfnd", preset="paper").resolve()
    with pytest.raises(InputError, match="--preset"):
        DistillConfig(preset="slow").resolve()


def test_quick_preset_and_a_config_stored_before_presets():
    cfg = DistillConfig(method="dfnd").resolve()
    assert (cfg.epochs, cfg.steps_per_epoch, cfg.batch_size, cfg.lr) == (10, 50, 128, QUICK_LR)
    assert cfg.weight_decay == 5e-4 and cfg.method_params == {}  # DFND-train.py's weight decay
    old = {k: v for k, v in cfg.to_dict().items() if k not in ("preset", "weight_decay",
                                                                "kdci_weight_decay", "augment")}
    legacy = DistillConfig.from_dict({**old, "method": "deepinv"}).resolve()
    assert legacy.weight_decay == 5e-4 and legacy.augment == "none"  # what release 0.1 ran with


def test_optimiser_groups_and_their_record(builtin):
    d = Distiller(tiny_config(method="dfnd", kdci=True, k=4, weight_decay=1e-3, kdci_weight_decay=0.0))
    groups = {g["name"]: g for g in d.optimizer.param_groups}
    assert set(groups) == {"student", "kdci"}  # DFND's matrix has its own Adam, not the student's SGD
    assert groups["student"]["weight_decay"] == 1e-3 and groups["kdci"]["weight_decay"] == 0.0
    assert all(g["lr"] == QUICK_LR and g["momentum"] == 0.9 for g in groups.values())
    result = d.fit(max_steps=5)
    record = result.optimizer
    assert record["kdci"]["weight_decay"] == 0.0 and record["student"]["lr"] == QUICK_LR
    assert record["noise_adaptation"] == {"optimizer": "Adam", "lr": 1e-3, "weight_decay": 0.0,
                                          "schedule": "constant"}


class Spy(Callback):
    def __init__(self):
        self.substitution = None

    def on_substitution(self, step, images):
        self.substitution = images.clone()


def test_the_student_batch_is_augmented_and_the_dictionarys_is_not(builtin):
    spy = Spy()
    d = Distiller(tiny_config(method="dfnd", kdci=True, k=4, augment="crop-flip"), callbacks=[spy])
    seen = {}
    d.rebuild_dictionary = (lambda rebuild: lambda data: (seen.setdefault("dictionary", data.clone()),
                                                          rebuild(data)))(d.rebuild_dictionary)
    inside = []  # True between the step's sampling and its end: the forwards of the step itself

    def sample(n, original=d.method.sample):
        inside.append(True)
        return original(n)
    d.method.sample = sample

    def keep(name):
        return lambda m, inp, out: seen.__setitem__(name, inp[0].clone()) if inside else None
    d.teacher.model.register_forward_hook(keep("teacher"))
    d.student.register_forward_hook(keep("student"))

    class StepEnd(Callback):
        def on_step_end(self, step, metrics):
            inside.clear()
    d.fit(max_steps=1, callbacks=[StepEnd()])
    assert torch.equal(seen["dictionary"], spy.substitution)  # the selection itself
    assert torch.equal(seen["teacher"], seen["student"])  # the same augmented batch
    rows = {tuple(r.tolist()) for r in spy.substitution.flatten(1)}
    changed = sum(tuple(r.tolist()) not in rows for r in seen["student"].flatten(1))
    assert changed > len(seen["student"]) // 2  # crop + flip moved most images


def test_digits_and_fashion_declare_no_augmentation_cifar_declares_crop_flip(tmp_path):
    from kdci_core.data import load_dataset

    assert load_dataset("digits").info.augment == "none"
    from tests.data.test_datasets import make_cifar10

    folder = make_cifar10(tmp_path)
    assert load_dataset("cifar10", folder.parent).info.augment == "crop-flip"


def test_mosaickd_augments_only_its_ood_half(builtin):
    d = Distiller(tiny_config(method="mosaickd", kdci=False, augment="crop-flip",
                              method_params={"pool_size": 600, "n_select": 200, "synth_batch": 8,
                                             "ngf": 8, "ndf": 8}))
    assert d.method.augments_itself and isinstance(d.method.ctx.augment, CropFlip)
    d.fit(max_steps=1)
    calls = []
    d.method.ctx.augment = lambda x: (calls.append(len(x)), x)[1]
    batch = d.method.sample(10)
    assert calls == [5] and batch.shape[0] == 10  # the OOD half only
