"""Diagnoses kept in the run store: save -> load gives the same diagnosis, a new store (a fresh
process) finds it, and corrupt, torn or foreign files read as absent with a reason."""

from __future__ import annotations

import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from kdci_core.diagnostics.diagnose import diagnose
from kdci_core.diagnostics.saved import (JSON_NAME, diagnoses_dir, load_diagnoses, load_diagnosis,
                                         save_diagnosis, teacher_id)
from kdci_core.errors import InputError
from tests.helpers import tiny_config

FAST_DEEPINV = {"g_steps": 3, "synth_every": 2, "synth_batch": 40}


@pytest.fixture(scope="module")
def diag(builtin):
    cfg = tiny_config(method="deepinv", kdci=False, method_params=FAST_DEEPINV)
    return diagnose(cfg, rounds=2, fid="teacher", with_k_curve=True)


def assert_same(a, b) -> None:
    for name in ("images", "rounds", "teacher_logits"):
        assert torch.equal(getattr(a.data, name), getattr(b.data, name)), name
    assert a.data.summary() == b.data.summary() and a.data.info == b.data.info
    assert a.config.to_dict() == b.config.to_dict()
    assert a.fid == b.fid and a.fid_real == b.fid_real and a.k_curve == b.k_curve
    np.testing.assert_array_equal(a.balance.substitution, b.balance.substitution)
    np.testing.assert_array_equal(a.balance.original, b.balance.original)
    assert len(a.balance.by_round) == len(b.balance.by_round)
    for p, q in zip(a.balance.by_round, b.balance.by_round):
        np.testing.assert_array_equal(p, q)
    assert a.balance.substitution_imbalance == b.balance.substitution_imbalance
    for name in ("prototypes", "proportions", "labels"):
        assert torch.equal(getattr(a.dictionary, name), getattr(b.dictionary, name)), name
    assert (a.dictionary.k_requested, a.dictionary.pca_components) == \
        (b.dictionary.k_requested, b.dictionary.pca_components)
    assert a.to_dict() == b.to_dict()  # what `diagnose --json` would print, device included


def test_round_trip(diag, tmp_path):
    folder = save_diagnosis(diag, "builtin", home=tmp_path)
    assert folder == tmp_path / "diagnoses" / "builtin-digits" / "deepinv"
    back = load_diagnosis(folder)
    assert back.reference is None and back.device == "cpu"
    assert_same(diag, back)
    assert len(back.balance.by_round) == 2


def test_a_new_store_finds_it_and_a_remake_replaces_it(diag, tmp_path):
    """What a server restart sees: nothing in memory, the files on disk."""
    cfg = replace(diag.config)
    save_diagnosis(diag, "builtin", home=tmp_path)
    sampling = replace(diag, data=replace(diag.data, method="dfnd", kind="sampling",
                                          rounds=torch.zeros_like(diag.data.rounds)),
                       balance=replace(diag.balance, by_round=[]))
    save_diagnosis(sampling, "builtin", home=tmp_path)
    found, problems = load_diagnoses(cfg, "builtin", home=tmp_path)
    assert set(found) == {"deepinv", "dfnd"} and not problems
    assert_same(sampling, found["dfnd"])
    remade = replace(diag, data=replace(diag.data, images=diag.data.images + 1))
    folder = save_diagnosis(remade, "builtin", home=tmp_path)
    assert len(list(folder.glob("tensors-*.safetensors"))) == 1  # the old tensors are gone
    assert torch.equal(load_diagnosis(folder).data.images, remade.data.images)
    other = replace(cfg, teacher_arch="wrn_16_1")  # same file, another setting: not this one's
    assert load_diagnoses(other, "builtin", home=tmp_path)[0] == {}


def test_corrupt_files_read_as_absent_with_a_reason(diag, tmp_path):
    cfg = diag.config
    folder = save_diagnosis(diag, "builtin", home=tmp_path)
    tensors = next(folder.glob("tensors-*.safetensors"))
    tensors.write_bytes(tensors.read_bytes()[:100])  # torn
    found, problems = load_diagnoses(cfg, "builtin", home=tmp_path)
    assert found == {} and "sha256" in problems["deepinv"] and str(folder) in problems["deepinv"]
    folder = save_diagnosis(diag, "builtin", home=tmp_path)
    (folder / JSON_NAME).write_text("{not json")
    with pytest.raises(InputError, match="unreadable"):
        load_diagnosis(folder)
    meta = {"format": 1, "tensors": {"file": "../../etc/passwd", "sha256": "0"}}
    (folder / JSON_NAME).write_text(json.dumps(meta))
    with pytest.raises(InputError, match="not a name this version writes"):
        load_diagnosis(folder)
    (folder / JSON_NAME).unlink()
    assert load_diagnosis(folder) is None  # nothing kept: absent, not an error
    assert load_diagnoses(cfg, "builtin", home=tmp_path) == ({}, {})


def test_teacher_ids_and_folder_names(tmp_path):
    cfg = tiny_config()
    assert teacher_id(cfg) == "builtin"
    blob = tmp_path / "t.pt"
    blob.write_bytes(b"teacher bytes")
    file_cfg = replace(cfg, teacher=str(blob), teacher_arch="lenet5")
    digest = teacher_id(file_cfg)
    assert len(digest) == 64 and teacher_id(file_cfg, "a" * 64) == "a" * 64
    assert diagnoses_dir(digest, "digits", tmp_path).name == f"{digest}-digits"
    with pytest.raises(InputError, match="nothing at"):
        teacher_id(replace(file_cfg, teacher=str(tmp_path / "gone.pt")))
    with pytest.raises(InputError, match="sha256"):
        diagnoses_dir("../x", "digits", tmp_path)
    with pytest.raises(InputError, match="dataset"):
        diagnoses_dir("builtin", "../../x", tmp_path)
