"""A report killed or failing while its files are written leaves the previous report whole (never
a 0-byte or half ``report.html``), and no temporary file once the next report is written."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from kdci_core.common.errors import StorageError
from kdci_core.reports import export_report
from tests.helpers import REPO, finished_runs


@pytest.fixture(scope="module")
def runs(builtin):
    return finished_runs()


def _old_report(store, ids, folder) -> dict:
    paths = export_report(store, list(ids.values()), folder / "report.html", include_students=False)
    return {p.name: p.read_bytes() for p in paths}


def _files(folder) -> dict:
    return {p.name: p.read_bytes() for p in folder.iterdir()}


def test_a_write_failing_halfway_keeps_the_old_report(runs, tmp_path, monkeypatch):
    store, ids = runs
    old = _old_report(store, ids, tmp_path)
    real = type(tmp_path).write_text

    def half_then_full_disk(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        raise OSError(28, "No space left on device")
    monkeypatch.setattr(type(tmp_path), "write_text", half_then_full_disk)
    with pytest.raises(StorageError, match="disk is full"):
        export_report(store, list(ids.values()), tmp_path / "report.html", include_students=False)
    assert _files(tmp_path) == old  # every file as it was, no temporary beside them


_KILLED_MIDWAY = textwrap.dedent("""
    import os, signal, sys
    from pathlib import Path
    from kdci_core.cli import main

    real = Path.write_text
    def half_then_killed(self, text, *args, **kwargs):
        real(self, text[: len(text) // 2], *args, **kwargs)
        os.kill(os.getpid(), signal.SIGKILL)
    Path.write_text = half_then_killed
    sys.exit(main(sys.argv[1:]))
""")


def test_a_report_command_killed_midway_keeps_the_old_report(runs, tmp_path):
    store, ids = runs
    old = _old_report(store, ids, tmp_path)
    argv = ["report", "--runs", *ids.values(), "--out", str(tmp_path / "report.html"), "--no-students"]
    env = {**os.environ, "KDCI_HOME": str(store.home)}
    proc = subprocess.run([sys.executable, "-c", _KILLED_MIDWAY, *argv], cwd=REPO, env=env,
                          capture_output=True, text=True, timeout=600)
    assert proc.returncode == -9, proc.stderr  # SIGKILL, inside the first file's write
    left = _files(tmp_path)
    assert {k: v for k, v in left.items() if not k.startswith(".")} == old
    assert [k for k in left if k.startswith(".report.html.")]  # a SIGKILL leaves its temporary
    # the next report sweeps what the killed one left, and writes whole files
    new = export_report(store, list(ids.values()), tmp_path / "report.html", include_students=False)
    assert sorted(_files(tmp_path)) == sorted(old) == sorted(p.name for p in new)
    assert all(p.stat().st_size > 0 for p in new)
    assert (tmp_path / "report.html").read_text().rstrip().endswith("</html>")
