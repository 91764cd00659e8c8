"""A run at its teacher's resolution and normalisation: a zoo teacher trained at 64 px on an
image folder by ``teacher train``, each of the six methods for one step at 64 px; digits upsampled
to 32 px RGB for a LeNet-5 trained so; the spec recorded in the result, reproduced by the command
line, carried to the export sidecar and to the memory estimate."""

from __future__ import annotations

import json
import shlex

import numpy as np
import pytest
import torch
from PIL import Image

from kdci_core.cli import build_parser, main
from kdci_core.cli.common import config_from_args
from kdci_core.data import load_dataset
from kdci_core.distill import Callback, DistillConfig, Distiller
from kdci_core.distill.config import command_line
from kdci_core.distill.memory import run_shape
from kdci_core.runs import RunStore
from kdci_core.runs.export import export_student, load_sidecar
from kdci_core.teachers.input_spec import checkpoint_metadata, read_sidecar, sidecar_path

#: one tiny step of each method (small synthetic batches, small pools)
TINY = {"deepinv": dict(g_steps=1, synth_batch=8, synth_every=1),
        "dafl": dict(synth_batch=8),
        "fast": dict(g_steps=2, synth_batch=8, synth_every=1, warmup=0),
        "cmi": dict(g_steps=1, synth_batch=8, synth_every=1, bank_size=64, n_neg=16),
        "dfnd": dict(pool_size=32, n_select=16),
        "mosaickd": dict(pool_size=32, n_select=16, synth_batch=8)}
#: heads that end in the teacher's normalisation of [0, 1] images (DAFL's ends in a BatchNorm)
BOUNDED = {"deepinv", "fast", "cmi", "dfnd", "mosaickd"}


def write_folder(root, *, brightness: float, seed: int, size: int = 64, n: int = 10):
    """Two classes of striped RGB images (horizontal vs vertical), ``n`` each, ``size`` px."""
    rng = np.random.default_rng(seed)
    stripes = (np.arange(size) // 4 % 2).astype(float)
    for c, name in enumerate(("horizontal", "vertical")):
        (root / name).mkdir(parents=True)
        base = np.repeat(stripes[:, None], size, 1) if c == 0 else np.repeat(stripes[None, :], size, 0)
        for i in range(n):
            img = np.stack([base, 1 - base, base], -1) * 0.8 + rng.random((size, size, 3)) * 0.2
            Image.fromarray((img * 255 * brightness).astype(np.uint8)).save(root / name / f"{i}.png")
    return root


@pytest.fixture(scope="module")
def folder_teacher(tmp_path_factory):
    """A LeNet-5 trained for one epoch at 64 px on folder A (bright); folder B (the same classes,
    darker: other statistics) is the run's reference dataset."""
    root = tmp_path_factory.mktemp("resolution")
    a = write_folder(root / "A", brightness=1.0, seed=0)
    b = write_folder(root / "B", brightness=0.5, seed=1)
    teacher = root / "t64.safetensors"
    assert main(["teacher", "train", "--dataset", "folder", "--data-root", str(a), "--arch", "lenet5",
                 "--image-size", "64", "--epochs", "1", "--out", str(teacher), "--device", "cpu",
                 "--quiet"]) == 0
    return teacher, b


class Keep(Callback):
    def __init__(self):
        self.images = []

    def on_substitution(self, step, images):
        self.images.append(images)


def test_teacher_train_records_its_input_spec(folder_teacher):
    teacher, _ = folder_teacher
    meta = checkpoint_metadata(teacher)
    assert (meta["image_size"], meta["in_channels"]) == (64, 3)
    assert len(meta["mean"]) == len(meta["std"]) == 3


@pytest.mark.parametrize("method", list(TINY))
def test_every_method_at_the_teachers_size_and_normalisation(folder_teacher, method):
    teacher, other = folder_teacher
    meta = checkpoint_metadata(teacher)
    cfg = DistillConfig(teacher=str(teacher), teacher_arch="lenet5", student="lenet5_half",
                        dataset="folder", data_root=str(other), method=method, kdci=False, epochs=1,
                        steps_per_epoch=1, batch_size=8, device="cpu", method_params=TINY[method])
    d, keep = Distiller(cfg), Keep()
    result = d.fit(callbacks=[keep], max_steps=1)
    images = keep.images[0]
    assert images.shape[1:] == (3, 64, 64)  # the folder's own default would be 32 px
    # the teacher's normalisation, not folder B's own statistics (B is darker)
    assert d.info.mean == meta["mean"] and d.info.std == meta["std"]
    assert load_dataset("folder", other, image_size=64).info.mean[0] < meta["mean"][0] - 0.1
    if method in BOUNDED:
        x01 = images.cpu() * torch.tensor(meta["std"]).view(1, 3, 1, 1) + torch.tensor(meta["mean"]).view(1, 3, 1, 1)
        assert float(x01.min()) >= -1e-4 and float(x01.max()) <= 1 + 1e-4
    spec = result.input_spec
    assert (spec["image_size"], spec["in_channels"], spec["mean"]) == (64, 3, list(meta["mean"]))
    assert spec["source"]["image_size"] == "checkpoint metadata of t64.safetensors"


@pytest.fixture(scope="module")
def digits_teacher(tmp_path_factory):
    """A LeNet-5 trained on digits upsampled to 32 px RGB, saved as .pt: its spec in a sidecar."""
    out = tmp_path_factory.mktemp("digits32") / "lenet32.pt"
    assert main(["teacher", "train", "--dataset", "digits", "--arch", "lenet5", "--image-size", "32",
                 "--in-channels", "3", "--epochs", "3", "--out", str(out), "--device", "cpu",
                 "--quiet"]) == 0
    return out


def test_digits_upsampled_for_a_teacher_trained_so(digits_teacher, tmp_path):
    side = read_sidecar(digits_teacher)
    assert (side["image_size"], side["in_channels"], side["arch"], side["dataset"]) == (32, 3, "lenet5", "digits")
    out = tmp_path / "r.json"
    assert main(["distill", "--teacher", str(digits_teacher), "--teacher-arch", "lenet5",
                 "--student", "lenet5_half", "--dataset", "digits", "--method", "deepinv", "--kdci", "on",
                 "--epochs", "1", "--steps-per-epoch", "2", "--batch-size", "16", "--device", "cpu",
                 "--param", "g_steps=2", "--param", "synth_batch=32", "--param", "synth_every=2",
                 "--json", str(out), "--quiet"]) == 0
    res = json.loads(out.read_text())
    spec = res["input_spec"]
    assert (spec["image_size"], spec["in_channels"]) == (32, 3)
    assert spec["mean"] == list(side["mean"]) and spec["std"] == list(side["std"])
    assert set(spec["source"].values()) == {"sidecar lenet32.pt.json"}
    assert res["teacher_accuracy"] > 30  # the teacher sees the inputs it was trained on

    # reproduced: the config's own command line, and with the recorded spec stated explicitly
    config = res["config"]
    again = _parsed(command_line(config))
    assert again.to_dict() == DistillConfig.from_dict(config).resolve().to_dict()
    explicit = command_line({**config, "input_spec": spec})
    assert explicit[explicit.index("--image-size") + 1] == "32"
    assert explicit[explicit.index("--in-channels") + 1] == "3"
    stated = _parsed(explicit)
    assert (stated.image_size, stated.in_channels, stated.mean, stated.std) == (32, 3, spec["mean"], spec["std"])
    sidecar_path(digits_teacher).rename(tmp_path / "away.json")  # the flags alone now
    try:
        d = Distiller(stated)
        assert (d.info.image_size, d.info.in_channels, list(d.info.mean)) == (32, 3, spec["mean"])
        assert set(d.input_spec.source.values()) == {"given"}
    finally:
        (tmp_path / "away.json").rename(sidecar_path(digits_teacher))

    # the export's sidecar states the input the student expects (and it can teach in turn)
    path, sidecar = export_student(RunStore(), res["run_id"], "safetensors", tmp_path / "s.safetensors")
    meta = load_sidecar(path)
    assert (meta["image_size"], meta["in_channels"], meta["input_size"]) == (32, 3, [32, 32])
    assert meta["mean"] == meta["normalisation"]["mean"] == spec["mean"]
    assert read_sidecar(path)["image_size"] == 32


def _parsed(argv: list[str]) -> DistillConfig:
    argv = shlex.split(shlex.join(argv))[3:]
    return config_from_args(build_parser(argv).parse_args(argv)).resolve()


def test_explicit_fields_beat_the_teacher_and_size_the_memory_estimate(digits_teacher):
    cfg = DistillConfig(teacher=str(digits_teacher), teacher_arch="lenet5", image_size=16,
                        mean=[0.5], method="dfnd", kdci=False, device="cpu",
                        method_params={"pool_size": 64, "n_select": 32}).resolve()
    assert run_shape(cfg) == (3, 16, 10)  # size given, channels from the teacher's sidecar
    assert run_shape(DistillConfig(teacher=str(digits_teacher), teacher_arch="lenet5")) == (3, 32, 10)
    assert run_shape(DistillConfig()) == (1, 8, 10)  # the built-in teacher: digits as ever
    d = Distiller(cfg)
    assert (d.info.image_size, d.info.in_channels, d.info.mean) == (16, 3, (0.5, 0.5, 0.5))
    assert d.input_spec.source["image_size"] == "given"
    assert d.input_spec.source["std"] == "sidecar lenet32.pt.json"


def test_cli_flags_and_their_errors(capsys):
    assert main(["distill", "--teacher", "builtin", "--dataset", "digits", "--method", "deepinv",
                 "--kdci", "off", "--image-size", "16", "--mean", "0.5", "--std", "0.25", "--dry-run"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert (shown["image_size"], shown["mean"], shown["std"]) == (16, [0.5], [0.25])
    for flags, message in [(["--image-size", "4"], "--image-size"), (["--std", "0"], "--std"),
                           (["--mean", "0.1", "0.2"], "--mean")]:
        assert main(["distill", "--teacher", "builtin", "--dataset", "digits", "--method", "deepinv",
                     "--kdci", "off", *flags, "--dry-run"]) == 2
        assert message in capsys.readouterr().err
