"""Safe teacher loading: formats, validation messages, refusal of code-running pickles."""

import json
import os
import pickle
import random

import pytest
import torch

from kdci_core.cli import main
from kdci_core.errors import InputError
from kdci_core.models import build_model
from kdci_core.models.weights import read_checkpoint, save_checkpoint
from kdci_core.teachers import builtin_teacher, builtin_teacher_path, load_teacher


@pytest.fixture
def lenet():
    torch.manual_seed(0)
    return build_model("lenet5", num_classes=10, in_channels=1).eval()


def _same(a, b):
    x = torch.randn(4, 1, 8, 8)
    return torch.allclose(a(x), b(x), atol=1e-6)


@pytest.mark.parametrize("suffix", [".safetensors", ".pt", ".pth"])
def test_roundtrip_formats(tmp_path, lenet, suffix):
    path = save_checkpoint(lenet, tmp_path / f"t{suffix}", metadata={"arch": "lenet5"})
    bundle = load_teacher(path, "lenet5", num_classes=10, in_channels=1)
    assert _same(bundle.model, lenet)
    assert bundle.num_classes == 10 and bundle.in_channels == 1
    assert not any(p.requires_grad for p in bundle.model.parameters())


def test_plain_state_dict_with_dataparallel_prefix(tmp_path, lenet):
    torch.save({"module." + k: v for k, v in lenet.state_dict().items()}, tmp_path / "dp.pt")
    assert _same(load_teacher(tmp_path / "dp.pt", "lenet5").model, lenet)


def test_torchscript_refused(tmp_path, lenet):
    """Even a plain traced model: loading TorchScript runs its code (tests/teachers/
    test_untrusted_files.py has one that overwrites a file); the message says what to save."""
    traced = torch.jit.trace(lenet, torch.randn(2, 1, 8, 8))
    traced.save(str(tmp_path / "t.ts"))
    with pytest.raises(InputError, match=r"refused: a TorchScript archive .*"
                                         r"torch.save\(model.state_dict\(\), path\)"):
        load_teacher(tmp_path / "t.ts", "lenet5", num_classes=10)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_code_running_pickle_refused(tmp_path, suffix):
    target = tmp_path / "pwned"
    path = tmp_path / f"evil{suffix}"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": _Evil(target)}, f)
    with pytest.raises(InputError, match="refused") as err:
        load_teacher(path, "lenet5")
    assert "asks to import or run code" in str(err.value) and "not a PyTorch" not in str(err.value)
    assert not target.exists()


def test_code_running_pickle_in_zip_refused(tmp_path):
    """torch.save's zip format with a malicious object inside is refused too."""
    target = tmp_path / "pwned2"
    torch.save({"state_dict": _Evil(target)}, tmp_path / "evil_zip.pt")
    with pytest.raises(InputError, match="refused") as err:
        load_teacher(tmp_path / "evil_zip.pt", "lenet5")
    assert "asks to import or run code" in str(err.value) and "not a PyTorch" not in str(err.value)
    assert not target.exists()


@pytest.mark.parametrize("content", [random.Random(0).randbytes(4096), b"just some text, no checkpoint",
                                     b"\x80\x02" + random.Random(1).randbytes(64)])
@pytest.mark.parametrize("suffix", [".pt", ".pth"])
def test_random_bytes_are_not_a_checkpoint_rather_than_code(tmp_path, content, suffix):
    """Bytes that are no checkpoint at all are named so, not as a file that asks to run code."""
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(content)
    for read in (lambda: load_teacher(path, "lenet5"), lambda: read_checkpoint(path)):  # every reader
        with pytest.raises(InputError, match="not a PyTorch/safetensors checkpoint") as err:
            read()
        assert "asks to import" not in str(err.value) and str(path) in str(err.value)


def test_truncated_torch_zip_is_not_a_checkpoint(tmp_path, lenet):
    path = tmp_path / "cut.pt"
    torch.save(lenet.state_dict(), path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="not a PyTorch/safetensors checkpoint: a damaged or truncated zip"):
        load_teacher(path, "lenet5")
    good = tmp_path / "legacy.pt"  # the legacy (pre-zip) format still reads
    torch.save(lenet.state_dict(), good, _use_new_zipfile_serialization=False)
    assert _same(load_teacher(good, "lenet5").model, lenet)


@pytest.mark.parametrize("content,suffix", [(os.urandom(4096), ".pt"), (b"", ".pt"),
                                            (os.urandom(300), ".safetensors")])
def test_garbage_files(tmp_path, content, suffix):
    path = tmp_path / f"junk{suffix}"
    path.write_bytes(content)
    with pytest.raises(InputError, match="checkpoint"):
        read_checkpoint(path)


def test_truncated_safetensors(tmp_path, lenet):
    path = save_checkpoint(lenet, tmp_path / "t.safetensors")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(InputError, match="safetensors"):
        load_teacher(path, "lenet5")


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="existing file"):
        load_teacher(tmp_path / "nope.pt", "lenet5")


def test_wrong_class_count_named(tmp_path, lenet):
    path = save_checkpoint(lenet, tmp_path / "t.safetensors")
    with pytest.raises(InputError, match=r"expected 100 classes.*has 10"):
        load_teacher(path, "lenet5", num_classes=100)


def test_wrong_channels_named(tmp_path, lenet):
    path = save_checkpoint(lenet, tmp_path / "t.safetensors")
    with pytest.raises(InputError, match=r"3 channel.*expects 1"):
        load_teacher(path, "lenet5", in_channels=3)


def test_wrong_architecture_named_and_guessed(tmp_path):
    wrn = build_model("wrn_16_1", num_classes=10, in_channels=1)
    path = save_checkpoint(wrn, tmp_path / "wrn.safetensors")
    with pytest.raises(InputError, match=r"lenet5.*wrn_16_1.*choose that architecture") as err:
        load_teacher(path, "lenet5")
    assert "--" not in str(err.value)  # the same words for `teacher inspect`, `distill` and the page


def test_unknown_architecture(tmp_path, lenet):
    path = save_checkpoint(lenet, tmp_path / "t.safetensors")
    with pytest.raises(InputError, match="unknown architecture"):
        load_teacher(path, "resnet9000")


def test_builtin_teacher_trained_once_and_accurate(builtin):
    mtime = builtin_teacher_path().stat().st_mtime
    again = builtin_teacher()
    assert builtin_teacher_path().stat().st_mtime == mtime  # cached, not retrained
    assert again.source == "builtin" and again.arch == "lenet5"
    from kdci_core.data import load_dataset
    from kdci_core.models.evaluation import evaluate

    data = load_dataset("digits")
    ev = evaluate(again.model, data.test, num_classes=10, device=torch.device("cpu"))
    assert ev.accuracy > 90.0
    assert len(ev.per_class) == 10 and ev.confusion.sum() == len(data.test)


def test_cli_teacher_train_and_inspect(tmp_path, capsys):
    out, js = tmp_path / "t.safetensors", tmp_path / "train.json"
    assert main(["teacher", "train", "--dataset", "digits", "--arch", "lenet5_half", "--epochs", "3",
                 "--out", str(out), "--json", str(js), "--quiet"]) == 0
    summary = json.loads(js.read_text())
    assert summary["arch"] == "lenet5_half" and 0 <= summary["test_accuracy"] <= 100
    ins = tmp_path / "inspect.json"
    assert main(["teacher", "inspect", str(out), "--arch", "lenet5_half", "--num-classes", "10",
                 "--dataset", "digits", "--json", str(ins)]) == 0
    report = json.loads(ins.read_text())
    assert report["valid"] and report["num_classes"] == 10 and len(report["per_class_accuracy"]) == 10
    assert abs(report["test_accuracy"] - summary["test_accuracy"]) < 1e-6
    capsys.readouterr()
    assert main(["teacher", "inspect", str(out), "--arch", "lenet5_half", "--num-classes", "7"]) == 2
    err = capsys.readouterr().err
    assert "expected 7 classes" in err and "Traceback" not in err


def test_cli_teacher_inspect_warns_near_chance(builtin, tmp_path, capsys):
    """An untrained file scores chance on digits: said on stderr and in the JSON, as the Teacher
    page warns; a trained one is not warned about."""
    from kdci_core.models import build_model
    from kdci_core.models.weights import save_checkpoint

    torch.manual_seed(0)
    untrained = save_checkpoint(build_model("lenet5_half", num_classes=10, in_channels=1), tmp_path / "u.safetensors")
    js = tmp_path / "u.json"
    assert main(["teacher", "inspect", str(untrained), "--arch", "lenet5_half", "--num-classes", "10",
                 "--dataset", "digits", "--json", str(js)]) == 0
    err = capsys.readouterr().err
    assert "within 5 points of chance (10.00% for 10 classes)" in err and "wrong normalisation" in err
    assert json.loads(js.read_text())["near_chance"] is True
    from kdci_core.teachers.builtin import builtin_teacher_path

    assert main(["teacher", "inspect", str(builtin_teacher_path()), "--arch", "lenet5", "--dataset", "digits"]) == 0
    assert "chance" not in capsys.readouterr().err


def test_cli_teacher_train_says_every_epoch_with_its_loss_and_accuracy(tmp_path, capfd):
    """Issue 22: ``teacher train`` printed nothing for 2 minutes, then one line. It now says what
    it trains, then one line per epoch (loss, training accuracy) on stderr, and its bar (on a
    terminal) carries the last epoch's numbers; ``--quiet`` leaves only the final line."""
    out, js = tmp_path / "t.safetensors", tmp_path / "train.json"
    assert main(["teacher", "train", "--dataset", "digits", "--arch", "lenet5_half", "--epochs", "2",
                 "--out", str(out), "--json", str(js)]) == 0
    stdout, stderr = capfd.readouterr()
    assert "training lenet5_half" in stderr and "2 epoch(s) x 12 steps of 128" in stderr
    epochs = [line for line in stderr.splitlines() if line.startswith("epoch ")]
    assert [line.split()[1] for line in epochs] == ["1/2", "2/2"]
    assert all("loss " in line and "train accuracy" in line and "%" in line for line in epochs)
    history = json.loads(js.read_text())["history"]
    assert [h["epoch"] for h in history] == [1, 2] and all(0 <= h["accuracy"] <= 100 for h in history)
    assert stdout.startswith("trained lenet5_half on digits")
    assert main(["teacher", "train", "--dataset", "digits", "--arch", "lenet5_half", "--epochs", "1",
                 "--out", str(out), "--quiet"]) == 0
    stdout, stderr = capfd.readouterr()
    assert stderr == "" and stdout.startswith("trained lenet5_half")


def test_teacher_training_reports_each_epochs_numbers_to_its_progress(tmp_path):
    from kdci_core.teachers import train_teacher

    calls, records = [], []
    train_teacher("digits", "lenet5_half", epochs=2, out=tmp_path / "t.safetensors", device=torch.device("cpu"),
                  progress=lambda *a: calls.append(a), on_epoch=records.append)
    steps = [c for c in calls if c[2].startswith("teacher training (epoch")]
    assert {c[1] for c in steps} == {24} and [c[0] for c in steps] == list(range(1, 25))
    second = [c[2] for c in steps if c[2].startswith("teacher training (epoch 2/2")]
    assert second and all(f"loss {records[0]['loss']:.3f}, acc {records[0]['accuracy']:.1f}%" in d for d in second)
    assert [r["epoch"] for r in records] == [1, 2]
