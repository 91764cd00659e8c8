"""The real-data tier: Fashion-MNIST from ../shared (skipped, with the reason, when absent)."""

import json

import pytest

from kdci_core.cli import main
from tests.helpers import FASHION

pytestmark = pytest.mark.skipif(
    not (FASHION / "t10k-images-idx3-ubyte.gz").exists(),
    reason=f"real Fashion-MNIST not found at {FASHION} (../shared is only beside the project's CI "
           "and developer checkouts, not a user's clone)")


@pytest.fixture(scope="module")
def fmnist_teacher(tmp_path_factory):
    out = tmp_path_factory.mktemp("fm") / "lenet5_fmnist.safetensors"
    js = out.with_suffix(".json")
    assert main(["teacher", "train", "--dataset", "fashion-mnist", "--data-root", str(FASHION),
                 "--arch", "lenet5", "--epochs", "1", "--out", str(out), "--json", str(js),
                 "--quiet"]) == 0
    return out, json.loads(js.read_text())


def test_teacher_trains_on_real_fashion_mnist(fmnist_teacher):
    _, summary = fmnist_teacher
    assert summary["num_classes"] == 10 and summary["in_channels"] == 1 and summary["image_size"] == 28
    assert summary["test_accuracy"] > 75.0  # one epoch of LeNet-5 reaches ~85%


@pytest.mark.parametrize("method,params", [("deepinv", ["g_steps=5", "synth_every=5"]),
                                           ("dfnd", ["pool_size=1000", "n_select=300"])])
def test_distill_fashion_mnist_from_a_teacher_file(fmnist_teacher, tmp_path, method, params):
    teacher, summary = fmnist_teacher
    out = tmp_path / "run.json"
    argv = ["distill", "--teacher", str(teacher), "--teacher-arch", "lenet5", "--student",
            "lenet5_half", "--dataset", "fashion-mnist", "--data-root", str(FASHION), "--method",
            method, "--kdci", "on", "--epochs", "1", "--steps-per-epoch", "5", "--batch-size", "64",
            "--json", str(out), "--quiet"]
    for p in params:
        argv += ["--param", p]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert res["dataset"] == "fashion-mnist" and res["teacher_arch"] == "lenet5"
    assert res["teacher_accuracy"] == pytest.approx(summary["test_accuracy"], abs=1e-6)
    assert len(res["history"]) == 1 and 0 <= res["student_accuracy"] <= 100


def test_teacher_dataset_class_mismatch_is_rejected(fmnist_teacher, capsys):
    teacher, _ = fmnist_teacher
    assert main(["teacher", "inspect", str(teacher), "--arch", "lenet5", "--num-classes", "10",
                 "--dataset", "fashion-mnist", "--data-root", str(FASHION)]) == 0
    capsys.readouterr()
    assert main(["teacher", "inspect", str(teacher), "--arch", "resnet18", "--num-classes", "10"]) == 2
    assert "resnet18" in capsys.readouterr().err
