"""Shift diagnostics end to end on digits: substitution data per method kind, the diagnosis and
its JSON, the ``diagnose`` command line, and the student views of finished runs."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from kdci_core.cli import main
from kdci_core.diagnostics.diagnose import diagnose, reference_subset
from kdci_core.diagnostics.substitution import collect_substitution_data
from kdci_core.errors import InputError
from tests.helpers import tiny_config

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
