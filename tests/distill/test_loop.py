"""The one distillation loop on digits: DeepInversion and DFND, KDCI on and off, the ablations,
the JSON contract of `distill --json`, the run store, reproducibility and bad input."""

import json

import pytest
import torch

from kdci_core.cli import main
from kdci_core.distill import Distiller
from kdci_core.runs import run_inline
from kdci_core.errors import InputError
from kdci_core.models import build_model
from kdci_core.models.weights import save_checkpoint
from kdci_core.runs import RunStore
from tests.helpers import tiny_config

JSON_FIELDS = {"run_id", "method", "kdci", "dataset", "teacher_arch", "student_arch", "seed",
               "device", "teacher_accuracy", "student_accuracy", "history", "wall_time_s",
               "peak_memory_mb", "config"}


@pytest.mark.parametrize("method", ["deepinv", "dfnd"])
@pytest.mark.parametrize("kdci", ["on", "off"])
def test_cli_distill_digits(builtin, tmp_path, method, kdci):
    out = tmp_path / "out.json"
    params = (["g_steps=5", "synth_every=5"] if method == "deepinv" else ["pool_size=600", "n_select=200"])
    argv = ["distill", "--teacher", "builtin", "--student", "lenet5_half", "--dataset", "digits",
            "--method", method, "--kdci", kdci, "--epochs", "2", "--steps-per-epoch", "5",
            "--batch-size", "32", "--json", str(out), "--quiet"]
    for p in params:
        argv += ["--param", p]
    assert main(argv) == 0
    res = json.loads(out.read_text())
    assert JSON_FIELDS <= set(res)
    assert res["method"] == method and res["kdci"] is (kdci == "on") and res["device"] == "cpu"
    assert res["teacher_arch"] == "lenet5" and res["student_arch"] == "lenet5_half"
    assert res["teacher_accuracy"] > 90 and 0 <= res["student_accuracy"] <= 100
    assert [h["epoch"] for h in res["history"]] == [1, 2]
    assert [h["step"] for h in res["history"]] == [5, 10]
    assert all({"epoch", "step", "student_accuracy", "loss"} <= set(h) for h in res["history"])
    if kdci == "on":
        assert res["k"] == (32 if method == "deepinv" else 128)
        assert abs(sum(res["dictionary"]["proportions"]) - 1) < 1e-5
        # generation: rebuilt from every synthetic batch; sampling: once before distillation
        assert res["dictionary"]["rebuilds"] == (2 if method == "deepinv" else 1)
    run = RunStore().get(res["run_id"])
    assert run.status()["status"] == "finished"
    assert len(run.metrics()) == 2 and run.config()["method"] == method
    assert run.path("student.safetensors").exists() and run.result()["run_id"] == res["run_id"]


def test_dfnd_noise_term_in_history(builtin):
    res = run_inline(tiny_config(method="dfnd", kdci=True)).result
    assert {"noise", "kd", "loss"} <= set(res.history[0].losses)


def test_same_seed_same_result(builtin):
    a = run_inline(tiny_config(seed=3, kdci=True)).result
    b = run_inline(tiny_config(seed=3, kdci=True)).result
    assert [h.student_accuracy for h in a.history] == [h.student_accuracy for h in b.history]
    assert [h.loss for h in a.history] == pytest.approx([h.loss for h in b.history], rel=1e-5)


@pytest.mark.parametrize("ablation", ["random-lambda", "random-prototypes", "uniform-proportions"])
def test_ablations_run(builtin, ablation):
    res = run_inline(tiny_config(kdci=True, ablation=ablation)).result
    assert res.config["ablation"] == ablation
    if ablation == "uniform-proportions":
        props = res.dictionary["proportions"]
        assert max(props) == pytest.approx(min(props))


def test_dictionary_from_another_model(builtin, tmp_path):
    other = build_model("lenet5_half", num_classes=10, in_channels=1)
    path = save_checkpoint(other, tmp_path / "other.safetensors")
    d = Distiller(tiny_config(kdci=True, dictionary_source=str(path),
                              dictionary_source_arch="lenet5_half"))
    assert d.dictionary_model is not d.teacher.model
    assert d.plugin.intervention.mapping is not None
    before = d.plugin.intervention.mapping.weight.detach().clone()
    res = d.fit()
    assert not torch.equal(before, d.plugin.intervention.mapping.weight.detach())
    assert res.dictionary["k"] <= 32


def test_kdci_compensates_in_the_loop_and_trains_attention(builtin):
    d = Distiller(tiny_config(kdci=True))
    w0 = d.plugin.intervention.W_h.weight.detach().clone()
    d.step(0)  # synthesises, rebuilds, trains once
    x = d.method.sample(8)
    d.student.eval()
    raw = d.student(x)
    assert torch.allclose(d.student_logits(x), d.plugin(raw))
    assert not torch.allclose(d.student_logits(x), raw)
    assert not torch.equal(w0, d.plugin.intervention.W_h.weight.detach())


def test_kdci_off_has_no_plugin(builtin):
    d = Distiller(tiny_config(kdci=False))
    assert d.plugin is None
    x = d.method.pool.data if d.method.pool.data is not None else torch.randn(4, 1, 8, 8)
    d.student.eval()
    assert torch.equal(d.student_logits(x), d.student(x))


BAD = [
    (["--k", "0"], "--k"),
    (["--k", "100"], "synthetic mini-batch"),
    (["--lr", "-1"], "--lr"),
    (["--lr", "1e9"], "--lr"),
    (["--epochs", "0"], "--epochs"),
    (["--batch-size", "1"], "--batch-size"),
    (["--student", "resnet9000"], "unknown architecture"),
    (["--param", "g_steps=-3"], "deepinv.g_steps"),
    (["--param", "bogus=1"], "unknown bogus"),
    (["--param", "noequals"], "KEY=VALUE"),
    (["--kdci", "off", "--ablation", "random-lambda"], "need --kdci on"),
    (["--dataset", "fashion-mnist", "--data-root", "/nonexistent"], "built-in teacher"),
    (["--dictionary-source", "x.pt"], "go together"),
]


@pytest.mark.parametrize("extra,needle", BAD)
def test_bad_input_exit_2_without_traceback(builtin, capsys, extra, needle):
    argv = ["distill", "--teacher", "builtin", "--student", "lenet5_half", "--dataset", "digits",
            "--method", "deepinv", "--kdci", "on", "--quiet"]
    # later flags win in argparse, so the bad value overrides the good default
    assert main(argv + extra) == 2
    err = capsys.readouterr().err
    assert needle in err and "Traceback" not in err


def test_teacher_file_errors(tmp_path, capsys):
    base = ["distill", "--student", "lenet5_half", "--dataset", "digits", "--method", "dfnd",
            "--kdci", "off", "--quiet"]
    assert main(base + ["--teacher", str(tmp_path / "none.pt"), "--teacher-arch", "lenet5"]) == 2
    assert "existing file" in capsys.readouterr().err
    assert main(base + ["--teacher", str(tmp_path / "none.pt")]) == 2
    assert "--teacher-arch" in capsys.readouterr().err
    wrong = save_checkpoint(build_model("lenet5", num_classes=7, in_channels=1), tmp_path / "t7.safetensors")
    assert main(base + ["--teacher", str(wrong), "--teacher-arch", "lenet5"]) == 2
    assert "7 classes" in capsys.readouterr().err


def test_failed_input_creates_no_run(builtin):
    before = len(RunStore().list())
    with pytest.raises(InputError):
        run_inline(tiny_config(k=1000))
    assert len(RunStore().list()) == before


def test_cli_methods_lists_all_six(capsys):
    assert main(["methods"]) == 0
    out = capsys.readouterr().out
    for name in ("dafl", "deepinv", "fast", "cmi", "dfnd", "mosaickd"):
        assert name in out
