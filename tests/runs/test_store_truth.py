"""A store that stays truthful under faults: the index is a cache that never fails a run and is
rebuilt when damaged; a worker that cannot write its end (a full disk) leaves the cause where it
can and the next listing shows the run failed with it; listing never needs to write (a full or
read-only disk); no temporary survives a failed write."""

from __future__ import annotations

import contextlib
import errno
import io
import json
import os
import socket
import subprocess
import sys
import warnings

import pytest

from kdci_core.cli import main
from kdci_core.common import jsonio
from kdci_core.distill import Callback
from kdci_core.runs import RunStore, run_inline
from tests.helpers import tiny_config
from tests.runs.test_store_faults import _namespace_python


def _cli(*args) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        code = main(list(args))
    return code, out.getvalue()


def _aside(home) -> list[str]:
    """The damaged index files moved aside (their -wal/-shm companions not counted)."""
    return sorted(p.name for p in home.glob("index.sqlite.corrupt-*")
                  if not p.name.endswith(("-wal", "-shm")))


def _temporaries(root) -> list[str]:
    return [str(p.relative_to(root)) for p in root.rglob("*.tmp")]


class GarbageInTheIndex(Callback):
    """Writes garbage over the index file in the middle of the run (after epoch 1)."""

    def __init__(self, home):
        self.home = home

    def on_epoch_end(self, record):
        if record.epoch == 1:
            (self.home / "index.sqlite").write_bytes(b"this is not a database " * 200)


def test_garbage_in_the_index_mid_run_the_run_finishes_and_the_index_is_rebuilt(store):
    earlier = run_inline(tiny_config(epochs=1, steps_per_epoch=2, k=4), store=store).run_id
    with pytest.warns(UserWarning, match="moved it to index.sqlite.corrupt-") as said:
        result = run_inline(tiny_config(epochs=2, steps_per_epoch=3, k=4), store=store,
                            callbacks=[GarbageInTheIndex(store.home)])
    assert result.result.student_accuracy is not None
    assert store.get(result.run_id).status()["status"] == "finished"
    assert sum("moved it to" in str(w.message) for w in said) == 1  # said once
    assert len(_aside(store.home)) == 1
    rows = {r["run_id"]: r["status"] for r in RunStore(store.home).rows()}  # rebuilt from the folders
    assert rows == {earlier: "finished", result.run_id: "finished"}


def test_a_damaged_index_met_by_two_listings_at_once_is_moved_aside_once(store):
    run_id = run_inline(tiny_config(epochs=1, steps_per_epoch=2, k=4), store=store).run_id
    (store.home / "index.sqlite").write_bytes(b"\x00garbage" * 500)
    cmd = [sys.executable, "-m", "kdci_core", "runs", "list"]
    procs = [subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              env={**os.environ, "KDCI_HOME": str(store.home)}) for _ in range(2)]
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    assert all(run_id in out and "finished" in out for out, _ in outs), outs
    assert len(_aside(store.home)) == 1
    assert sum("moved it to index.sqlite.corrupt-" in err for _, err in outs) == 1, outs


class DiskFullFrom(Callback):
    """From epoch ``n`` on, every rename (every atomic write) fails as on a full disk."""

    def __init__(self, monkeypatch, n=1):
        self.monkeypatch, self.n = monkeypatch, n

    def on_epoch_end(self, record):
        if record.epoch == self.n:
            def full(src, dst):
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self.monkeypatch.setattr(jsonio.os, "replace", full)


@pytest.fixture
def disk():
    """A monkeypatch of its own (undone mid-test when the disk has room again, and at the end
    whatever happens), apart from the store fixture's $KDCI_HOME."""
    patch = pytest.MonkeyPatch()
    yield patch
    patch.undo()


def test_a_worker_that_cannot_write_its_end_is_listed_failed_with_the_cause(store, disk):
    from kdci_core.errors import StorageError

    with pytest.raises(StorageError, match="the disk is full"):
        run_inline(tiny_config(epochs=3, steps_per_epoch=2, k=4), store=store, callbacks=[DiskFullFrom(disk)])
    [run] = store.list()
    assert json.loads(run.path("status.json").read_text())["status"] == "running"  # its end: unwritten
    assert _temporaries(run.root) == []
    # the disk is still full: the listings show the run failed with the cause, and write nothing
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        code, out = _cli("runs", "list")
    assert code == 0 and "failed" in out and run.run_id in out
    assert any("without recording it" in str(w.message) for w in said)
    code, out = _cli("runs", "show", run.run_id)
    assert code == 0 and "failed" in out and "the disk is full" in out
    assert json.loads(run.path("status.json").read_text())["status"] == "running"
    from kdci_core.runs.reserve import RESERVE  # where the worker left its end: bytes it already had
    assert "the disk is full" in json.loads(run.path(RESERVE).read_text())["error"]
    disk.undo()  # room again: the next listing records it
    assert _cli("runs", "list")[0] == 0
    st = json.loads(run.path("status.json").read_text())
    assert st["status"] == "failed" and "the disk is full" in st["error"]


def _dead_pid() -> int:
    proc = subprocess.Popen(["true"])
    proc.wait()
    return proc.pid


@pytest.mark.parametrize("code,cause", [(errno.ENOSPC, "full"), (errno.EROFS, "read-only")])
def test_listing_a_dead_worker_needs_no_write(store, monkeypatch, code, cause):
    """``runs list`` and ``runs show`` on a disk that takes no write: exit 0, the dead worker's
    run shown failed (decided in memory), the status file untouched."""
    run = store.create(tiny_config().to_dict())
    run.set_status("running", pid=_dead_pid(), host=socket.gethostname(), backend="local")

    def refuse(*args, **kwargs):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(jsonio.os, "replace", refuse)
    with warnings.catch_warnings(record=True) as said:
        warnings.simplefilter("always")
        code_, out = _cli("runs", "list")
    assert code_ == 0 and "failed" in out, out
    assert any(cause in str(w.message) and f"listing run {run.run_id} as failed without recording it"
               in str(w.message) for w in said), [str(w.message) for w in said]
    code_, out = _cli("runs", "show", run.run_id)
    assert code_ == 0 and "failed" in out and "worker lost" in out, out
    again = RunStore(store.home)  # another store of the same process (a page opens several)
    assert again.get(run.run_id).status()["status"] == "failed" and again.rows()[0]["status"] == "failed"
    assert json.loads(run.path("status.json").read_text())["status"] == "running"


def test_a_heartbeat_that_cannot_be_written_leaves_no_temporary(store, monkeypatch):
    run = store.create(tiny_config().to_dict())

    def full(src, dst):
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
    monkeypatch.setattr(jsonio.os, "replace", full)
    with pytest.raises(Exception, match="No space left"):
        run.heartbeat()
    assert _temporaries(run.root) == []


def test_an_append_the_disk_cuts_short_is_cut_back(store, monkeypatch):
    """A metrics line the disk takes only half of is removed again (truncating needs no room):
    no torn line before the next epoch's, which would make the run folder corrupt."""
    from kdci_core.errors import StorageError
    from kdci_core.runs.integrity import problems

    run = store.create(tiny_config().to_dict())
    run.append_metrics({"epoch": 1, "loss": 1.0})
    before = run.path("metrics.jsonl").read_bytes()
    write = os.write
    with monkeypatch.context() as full:
        full.setattr(jsonio.os, "write", lambda fd, data: write(fd, data[: len(data) // 2]))
        with pytest.raises(StorageError, match="metrics.jsonl"):
            run.append_metrics({"epoch": 2, "loss": 0.5})
    assert run.path("metrics.jsonl").read_bytes() == before
    run.append_metrics({"epoch": 2, "loss": 0.5})  # room again
    assert [m["epoch"] for m in run.metrics()] == [1, 2] and problems(run.root) == []


DISK_SCRIPT = """
    import contextlib, io, json, os, shutil, subprocess, sys, time
    from pathlib import Path
    home = Path(os.environ["MNT"]) / "home"
    (home / "teachers").mkdir(parents=True)
    shutil.copy(os.environ["BUILTIN"], home / "teachers")
    os.environ["KDCI_HOME"] = str(home)
    from kdci_core.cli import main
    from kdci_core.runs import LocalBackend, RunStore, launch, pid_alive
    from tests.helpers import tiny_config

    def cli(*args):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            code = main(list(args))
        return code, out.getvalue()

    store = RunStore(home)
    params = {"g_steps": 5, "synth_every": 5, "synth_batch": 32}
    [rid] = launch([tiny_config(epochs=50, steps_per_epoch=20, method_params=params)], LocalBackend(store, 1))
    run = store.get(rid)
    deadline = time.time() + 300
    while not run.metrics() and time.time() < deadline:
        time.sleep(0.2)
    pid = run.status()["pid"]
    with open(home / "filler", "wb") as f:  # fill the disk to the last byte
        try:
            while True:
                f.write(b"\\0" * 65536)
                f.flush()
        except OSError:
            pass
    while pid_alive(pid) and time.time() < deadline:
        time.sleep(0.2)
    out = {"worker_gone": not pid_alive(pid),
           "on_disk": json.loads(run.path("status.json").read_text())["status"]}
    out["list"] = cli("runs", "list")
    out["show"] = cli("runs", "show", rid)
    out["temporaries"] = [str(p) for p in run.root.rglob("*.tmp")]
    (home / "filler").unlink()
    subprocess.run(["mount", "-o", "remount,ro", os.environ["MNT"]], check=True)
    out["list_ro"] = cli("runs", "list")
    subprocess.run(["mount", "-o", "remount,rw", os.environ["MNT"]], check=True)
    cli("runs", "list")
    out["written"] = json.loads(run.path("status.json").read_text())
    print("RESULT " + json.dumps(out))
"""


def test_a_disk_that_fills_under_a_running_worker(builtin, tmp_path):
    """On a real small disk (a private tmpfs): the worker dies of the full disk, its status file
    still says running; ``runs list`` / ``runs show`` exit 0 and show it failed with the cause,
    on the full disk and on a read-only one; no temporary is left; with room again the
    listing writes the verdict."""
    from kdci_core.teachers import builtin_teacher_path

    proc = _namespace_python(DISK_SCRIPT, "64m", tmp_path, BUILTIN=str(builtin_teacher_path()))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(lines[-1][7:])
    assert out["worker_gone"] and out["on_disk"] == "running", out
    for key in ("list", "show", "list_ro"):
        code, text = out[key]
        assert code == 0 and "failed" in text, (key, out)
    assert "disk is full" in out["show"][1], out["show"]
    assert out["temporaries"] == [], out
    assert out["written"]["status"] == "failed" and "disk is full" in out["written"]["error"], out
