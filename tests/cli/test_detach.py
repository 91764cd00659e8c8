"""``distill --detach`` as a user runs it (issue 22): once the settings were checked by an earlier
call, the command prints the run id without importing torch in the launching process; a bad K
is still refused before a run exists; the worker's ``worker.log`` says each epoch with the
student's accuracy, and the run detail view's Log tab shows it."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys

import pytest

from kdci_core.cli import build_parser
from kdci_core.cli.common import config_from_args

#: runs the command line in a fresh process, then says on stderr whether torch was loaded
PROBE = ("import sys; from kdci_core.cli import main\n"
         "code = main(sys.argv[1:])\n"
         "print('torch loaded' if 'torch' in sys.modules else 'no torch', file=sys.stderr)\n"
         "sys.exit(code)")
DETACH = ["distill", "--teacher", "builtin", "--dataset", "digits", "--method", "deepinv", "--kdci", "on",
          "--epochs", "2", "--steps-per-epoch", "3", "--param", "g_steps=2", "--detach"]


def run_cli(home, *argv):
    return subprocess.run([sys.executable, "-c", PROBE, *argv], capture_output=True, text=True,
                          env={**os.environ, "KDCI_HOME": str(home)}, timeout=600)


def run_ids(home) -> set:
    runs = home / "runs"
    return {p.name for p in runs.iterdir() if p.is_dir()} if runs.exists() else set()


@pytest.fixture(scope="module")
def warm(tmp_path_factory, builtin):
    """A KDCI_HOME where a first (cold) ``--detach`` imported torch, checked the settings and
    wrote the cache; its run finished. Returns (home, that run's id)."""
    from kdci_core.runs import RunStore, wait_for
    from kdci_core.teachers import builtin_teacher_path

    home = tmp_path_factory.mktemp("detach_home")
    (home / "teachers").mkdir()
    shutil.copy(builtin_teacher_path(), home / "teachers" / builtin_teacher_path().name)
    proc = run_cli(home, *DETACH)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "torch loaded"  # cold: the full validation
    run_id = proc.stdout.strip()
    assert run_ids(home) == {run_id}
    assert wait_for(RunStore(home), [run_id], timeout=300) == {run_id: "finished"}
    return home, run_id


def test_a_warm_detach_prints_the_run_id_without_importing_torch(warm):
    home, first = warm
    extra = ["--seed", "1", "--k", "16"]
    proc = run_cli(home, *DETACH, *extra)
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip().splitlines()[-1] == "no torch", proc.stderr
    run_id = proc.stdout.strip()
    assert run_ids(home) == {first, run_id}
    from kdci_core.runs import RunStore, wait_for

    store = RunStore(home)
    argv = [*DETACH, *extra]
    assert store.get(run_id).config() == config_from_args(build_parser(argv).parse_args(argv)).resolve().to_dict()
    assert wait_for(store, [run_id], timeout=300) == {run_id: "finished"}  # no worker left behind


@pytest.mark.parametrize("extra, said", [
    (("--k", "65"), "error: --k 65: K must not exceed the 64 images of each synthetic mini-batch"),
    (("--param", "g_steps=abc"), "error: deepinv.g_steps: expected an integer between 1 and 10000000"),
    (("--param", "g_steps"), "error: --param: expected KEY=VALUE, found 'g_steps'")])
def test_bad_settings_are_refused_before_a_run_exists_with_a_warm_cache(warm, extra, said):
    home, _ = warm
    before = run_ids(home)
    proc = run_cli(home, *DETACH, *extra)
    assert proc.returncode == 2
    err = proc.stderr.strip().splitlines()
    assert err[0].startswith(said), proc.stderr
    assert len(err) == 2 and "Traceback" not in proc.stderr  # the line, then the probe's own
    assert run_ids(home) == before


def test_the_worker_log_says_every_epoch_with_its_accuracy(warm):
    home, run_id = warm
    from kdci_core.runs import RunStore

    log = RunStore(home).get(run_id).log_tail(200)
    epochs = re.findall(r"\] epoch (\d+)/2  step \d+  loss [\d.]+  student (\d+\.\d+)%", log)
    assert [e for e, _acc in epochs] == ["1", "2"], log
    assert re.search(r"\] started: deepinv, KDCI on, 2 epochs x 3 steps", log), log
    assert re.search(r"\] finished$", log, re.MULTILINE), log


def test_the_log_tab_shows_the_workers_lines(warm, monkeypatch):
    from streamlit.testing.v1 import AppTest

    from tests.helpers import MAIN

    home, run_id = warm
    monkeypatch.setenv("KDCI_HOME", str(home))
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page("../pages/runs.py")
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, at.exception
    logs = [c.value for c in at.code if "started: deepinv" in c.value]
    assert len(logs) == 1 and re.search(r"epoch 2/2  step 6  loss [\d.]+  student \d+\.\d+%", logs[0])
    assert any("every epoch (loss, student accuracy)" in c.value for c in at.caption)
