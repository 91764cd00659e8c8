"""Shift diagnostics end to end on digits: substitution data per method kind, the diagnosis and
its JSON, the ``diagnose`` command line, and the student views of finished runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from conftest import tiny_config
from kdci_core.cli import main
from kdci_core.diagnostics.diagnose import diagnose, reference_subset
from kdci_core.diagnostics.students import (corrected_examples, per_class_delta, run_test_split,
                                            student_view, subset_indices)
from kdci_core.diagnostics.substitution import collect_substitution_data
from kdci_core.errors import InputError

FAST_DEEPINV = {"g_steps": 3, "synth_every": 2, "synth_batch": 40}
FAST_DFND = {"pool_size": 600, "n_select": 200}


@pytest.fixture(scope="module")
def deepinv_diag(builtin):
    cfg = tiny_config(method="deepinv", kdci=False, method_params=FAST_DEEPINV)
    return diagnose(cfg, rounds=3, fid="teacher", with_k_curve=True)


def test_generation_data_is_tagged_by_round(deepinv_diag):
    d = deepinv_diag.data
    assert d.kind == "generation" and d.num_rounds == 3
    assert d.images.shape == (120, 1, 8, 8) and d.teacher_logits.shape == (120, 10)
    assert torch.equal(d.rounds, torch.arange(3).repeat_interleave(40))
    assert d.student_steps == 5  # rounds at steps 0, 2, 4 (synth_every=2)
    assert torch.isfinite(d.images).all()


def test_diagnosis_numbers(deepinv_diag):
    diag = deepinv_diag
    bal = diag.balance
    assert bal.substitution.sum() == pytest.approx(1.0) and bal.original.sum() == pytest.approx(1.0)
    assert len(bal.by_round) == 3 and all(p.sum() == pytest.approx(1.0) for p in bal.by_round)
    counts = np.bincount(diag.data.pseudo_labels.numpy(), minlength=10) / 120
    np.testing.assert_allclose(bal.substitution, counts)
    assert bal.original_imbalance.normalised_entropy > 0.99  # digits' test split is balanced
    assert diag.fid.extractor_kind == "teacher" and diag.fid.n_substitution == 120
    assert diag.fid.n_reference == 360 and diag.fid.value > 0
    real = diag.fid_real  # real training images of the same count: far closer than 3-step synthesis
    assert real.n_substitution == 120 and real.extractor_name == diag.fid.extractor_name
    assert 0 < real.value < diag.fid.value / 2
    assert diag.dictionary.k <= 32 and diag.dictionary.proportions.sum().item() == pytest.approx(1.0)
    curve = diag.k_curve
    assert curve.ks[0] <= curve.recommended_k <= curve.ks[-1]


def test_diagnosis_json_round_trips(deepinv_diag):
    out = json.loads(json.dumps(deepinv_diag.to_dict()))
    assert out["method"] == "deepinv" and out["dataset"] == "digits"
    assert out["substitution"]["n_images"] == 120 and out["substitution"]["rounds"] == 3
    assert set(out["proportions"]["imbalance"]) == {"substitution", "original"}
    assert len(out["dictionary"]["prototypes"]) == out["dictionary"]["k"]
    assert out["fid"]["extractor_name"].startswith("teacher penultimate")
    assert out["fid_real_data"]["n_substitution"] == 120


def test_sampling_method_selects_once(builtin):
    cfg = tiny_config(method="dfnd", kdci=False, method_params=FAST_DFND)
    data, ref = collect_substitution_data(cfg, rounds=5)
    assert data.kind == "sampling" and data.num_rounds == 1 and data.student_steps == 0
    assert len(data.images) == 200 and len(ref.test) == 360


def test_reference_subset_is_fixed(builtin):
    cfg = tiny_config(method="dfnd", kdci=False, method_params=FAST_DFND)
    _, ref = collect_substitution_data(cfg)
    a, b = reference_subset(ref, 100, seed=3), reference_subset(ref, 100, seed=3)
    assert len(a) == 100 and torch.equal(a, b)
    assert len(reference_subset(ref, 10_000)) == 360


def test_bad_rounds_rejected(builtin):
    with pytest.raises(InputError, match="rounds"):
        collect_substitution_data(tiny_config(), rounds=0)


def test_cli_diagnose_json(builtin, tmp_path, capsys):
    out = tmp_path / "diag.json"
    code = main(["diagnose", "--teacher", "builtin", "--dataset", "digits", "--method", "dfnd",
                 "--param", "pool_size=600", "--param", "n_select=200", "--k", "8",
                 "--fid", "teacher", "--json", str(out), "--quiet"])
    assert code == 0
    res = json.loads(out.read_text())
    assert res["fid"]["extractor_kind"] == "teacher" and res["fid"]["n_substitution"] == 200
    assert sum(res["proportions"]["substitution"]) == pytest.approx(1.0)
    assert res["dictionary"]["k_requested"] == 8 and res["dictionary"]["k"] <= 8
    assert "normalised entropy" in capsys.readouterr().out


def test_cli_diagnose_rejects_k_above_samples(builtin, capsys):
    code = main(["diagnose", "--teacher", "builtin", "--dataset", "digits", "--method", "dfnd",
                 "--param", "pool_size=600", "--param", "n_select=50", "--k", "64", "--fid", "none",
                 "--quiet"])
    assert code == 2 and "k" in capsys.readouterr().err


# --- student views ---------------------------------------------------------------------------
def test_corrected_examples():
    labels = np.array([0, 1, 2, 3, 4])
    kdci = np.array([0, 1, 0, 3, 0])
    vanilla = np.array([0, 0, 2, 1, 0])
    c = corrected_examples(labels, kdci, vanilla)
    assert c.fixed.tolist() == [1, 3] and c.broken.tolist() == [2]
    with pytest.raises(InputError):
        corrected_examples(labels, kdci[:3], vanilla)


def test_subset_indices_fixed_and_sorted():
    a, b = subset_indices(1000, 50, seed=1), subset_indices(1000, 50, seed=1)
    assert np.array_equal(a, b) and np.all(np.diff(a) > 0) and len(a) == 50
    assert np.array_equal(subset_indices(10, 50), np.arange(10))


def test_student_views_of_two_finished_runs(builtin):
    from kdci_core.distill import distill
    from kdci_core.runstore import RunStore

    store = RunStore()
    runs = [store.get(distill(tiny_config(kdci=kdci, method_params=FAST_DEEPINV))["run_id"])
            for kdci in (True, False)]
    test = run_test_split(runs[0])
    views = [student_view(r, test, num_classes=10, max_points=100) for r in runs]
    for v, r in zip(views, runs):
        assert v.features.shape[0] == 100 and v.features.ndim == 2 and np.isfinite(v.features).all()
        assert v.evaluation.accuracy == pytest.approx(r.result()["student_accuracy"])
    assert np.array_equal(views[0].indices, views[1].indices)
    delta = per_class_delta(views[0].evaluation, views[1].evaluation)
    assert delta.shape == (10,)
    c = corrected_examples(test.labels.numpy(), views[0].evaluation.predictions,
                           views[1].evaluation.predictions)
    acc_gap = 100 * (len(c.fixed) - len(c.broken)) / len(test)
    assert acc_gap == pytest.approx(views[0].evaluation.accuracy - views[1].evaluation.accuracy)


def test_student_view_of_unfinished_run_is_rejected(builtin):
    from kdci_core.diagnostics.students import load_run_student
    from kdci_core.runstore import RunStore

    run = RunStore().create(tiny_config().to_dict())
    with pytest.raises(InputError, match="no student checkpoint"):
        load_run_student(run)
