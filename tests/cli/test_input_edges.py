"""``kdci distill`` at its input edges: a ``--param`` value of the wrong kind, K above the samples a
dictionary is built from, a synthetic batch that cannot fit in memory. Each is exit 2 with one
line, before a run or a worker exists (``--dry-run`` and ``--detach`` alike)."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from kdci_core.cli import main

DISTILL = ["distill", "--teacher", "builtin", "--dataset", "digits", "--method", "deepinv", "--kdci", "on"]


def _one_line_error(capsys, start: str) -> str:
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"error: {start}") and "\n" not in err, err
    return err


@pytest.mark.parametrize("value", ["abc", "null", "[1]", "{}", "nan", "inf", "1e400", "-5", "1.5", "true"])
def test_a_bad_param_value_is_exit_2_with_one_line(value, capsys):
    assert main([*DISTILL, "--param", f"g_steps={value}", "--dry-run"]) == 2
    _one_line_error(capsys, "deepinv.g_steps: expected ")


def test_no_traceback_from_the_command(tmp_path):
    """The installed command, as a user runs it: one line on stderr, exit 2."""
    argv = [sys.executable, "-m", "kdci_core", *DISTILL, "--param", "g_steps=abc", "--dry-run"]
    proc = subprocess.run(argv,
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "KDCI_HOME": str(tmp_path)})
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.strip() == ("error: deepinv.g_steps: expected an integer between 1 and 10000000, "
                                   "found 'abc'")


def test_a_good_param_is_stored_typed(capsys):
    assert main([*DISTILL, "--param", "g_steps=2e2", "--param", "lr_g=1", "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert '"g_steps": 200,' in out and '"lr_g": 1.0' in out


@pytest.mark.parametrize("mode", ["--dry-run", "--detach"])
def test_k_above_the_synthetic_batch_is_refused_before_a_run_exists(mode, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    assert main([*DISTILL, "--k", "65", mode]) == 2
    _one_line_error(capsys, "--k 65: K must not exceed the 64 images of each synthetic mini-batch")
    runs = tmp_path / "runs"
    assert not runs.exists() or not [p for p in runs.iterdir() if p.is_dir()]


def test_a_synthetic_batch_that_cannot_fit_is_refused_at_the_dry_run(monkeypatch, capsys):
    from kdci_core.distill import memory

    monkeypatch.setattr(memory, "free_memory", lambda device: (16 * 2**30, "available (test)"))
    assert main([*DISTILL, "--param", "synth_batch=1000000", "--dry-run"]) == 2
    err = _one_line_error(capsys, "deepinv.synth_batch: 1000000 images do not fit: ")
    assert "GiB" in err and "give deepinv.synth_batch" in err
