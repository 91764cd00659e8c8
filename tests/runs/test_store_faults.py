"""A store that one bad file cannot break: damaged run folders are listed ``corrupt`` with the
reason while every command and page works on the others; a full or read-only disk gives a clear
error and loses no other run's data; run names are labels, escaped in every report format."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from kdci_core.cli import main
from kdci_core.errors import InputError
from kdci_core.runs import CHECKPOINT, RunStore, reconcile, run_inline, validate_run_name
from kdci_core.runs.table import table_rows
from tests.helpers import open_page, tiny_config

DAMAGE = {  # which file, what garbage, what the listing says
    "status": ("status.json", b"{\"status\": \"runn", "status.json: not valid JSON"),
    "config": ("config.json", b"[1, 2, 3]", "config.json: expected a JSON object"),
    "metrics": ("metrics.jsonl", b"\xff\xfe garbage\n{\"epoch\": 2}\n", "metrics.jsonl: not text"),
    "checkpoint": (CHECKPOINT, b"\x00" * 40, "checkpoint.safetensors: not a safetensors file"),
}


@pytest.fixture
def damaged(store):
    """One sound finished run and one copy of it per kind of damage."""
    run_inline(tiny_config(epochs=2, steps_per_epoch=2, k=4), store=store, callbacks=())
    good = store.list()[0]
    ids = {}
    for kind, (name, garbage, _) in DAMAGE.items():
        copy = good.root.with_name(f"{good.run_id}-{kind}")
        shutil.copytree(good.root, copy)
        (copy / name).write_bytes(garbage)
        ids[kind] = copy.name
    return good.run_id, ids


def test_damaged_runs_are_listed_corrupt_with_the_reason_and_the_rest_works(damaged, capsys):
    good, ids = damaged
    store = RunStore()  # a fresh listing: the index is rebuilt from the folders
    rows = {r["run_id"]: r for r in store.rows()}
    assert rows[good]["status"] == "finished" and rows[good]["error"] is None
    for kind, run_id in ids.items():
        assert rows[run_id]["status"] == "corrupt", kind
        assert DAMAGE[kind][2] in rows[run_id]["error"], rows[run_id]["error"]
    assert reconcile(store) == []
    assert {r["run"] for r in table_rows(store)} >= {good, *ids.values()}
    assert main(["runs", "list"]) == 0
    out = capsys.readouterr().out
    assert out.count("corrupt run folder: ") == len(ids) and good in out
    assert main(["runs", "show", good]) == 0
    capsys.readouterr()
    assert main(["runs", "show", ids["status"]]) == 2
    assert "status.json" in capsys.readouterr().err
    assert main(["runs", "list", "--status", "corrupt"]) == 0
    assert f"{good} " not in capsys.readouterr().out


def test_the_runs_page_lists_a_corrupt_run_beside_the_others(damaged):
    good, ids = damaged
    at = open_page("../pages/runs.py")
    table = next(d.value for d in at.get("arrow_data_frame") if "run" in d.value.columns)
    statuses = dict(zip(table["run"], table["status"].astype(str)))
    assert "finished" in statuses[good] and all("corrupt" in statuses[i] for i in ids.values())


def _namespace_python(script: str, size: str, tmp_path: Path, **env) -> subprocess.CompletedProcess:
    """``script`` in a Python run inside a private mount namespace, where ``$MNT`` is a tmpfs of
    ``size``: a real small disk that fills up, without root and without touching this machine's
    mounts. Skipped where unprivileged user namespaces are not allowed."""
    if not shutil.which("unshare"):
        pytest.skip("needs util-linux `unshare` for a private tmpfs")
    mnt = tmp_path / "mnt"
    mnt.mkdir()
    probe = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                            f"mount -t tmpfs -o size=1m tmpfs {mnt}"], capture_output=True, text=True)
    if probe.returncode != 0:
        pytest.skip(f"no private tmpfs on this machine (unshare/mount refused: {probe.stderr.strip()})")
    (tmp_path / "script.py").write_text(textwrap.dedent(script))
    env = {**os.environ, **env, "MNT": str(mnt), "PYTHONPATH": str(Path(__file__).resolve().parents[2])}
    return subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c",
                           f"mount -t tmpfs -o size={size} tmpfs {mnt} && exec {sys.executable} "
                           f"{tmp_path / 'script.py'}"], capture_output=True, text=True, env=env,
                          timeout=600)


DISK_SCRIPT = """
    import json, os, shutil, subprocess, sys
    from pathlib import Path
    home = Path(os.environ["MNT"]) / "home"
    (home / "teachers").mkdir(parents=True)
    shutil.copy(os.environ["BUILTIN"], home / "teachers")
    os.environ["KDCI_HOME"] = str(home)
    from kdci_core.errors import StorageError
    from kdci_core.runs import RunStore, run_inline
    from tests.helpers import tiny_config
    store = RunStore(home)
    run_inline(tiny_config(epochs=1, steps_per_epoch=2, k=4), store=store)
    [a] = store.list()
    before = {p.name: p.read_bytes() for p in a.root.iterdir() if p.is_file()}
    out = {}
    if os.environ["MODE"] == "full":
        with open(home / "filler", "wb") as f:  # fill the disk to the last byte
            try:
                while True:
                    f.write(b"\\0" * 65536)
                    f.flush()
            except OSError:
                pass
    else:
        subprocess.run(["mount", "-o", "remount,ro", os.environ["MNT"]], check=True)
    try:
        run_inline(tiny_config(epochs=1, steps_per_epoch=2, k=4), store=RunStore(home))
        out["error"] = None
    except StorageError as exc:
        out["error"] = str(exc)
    out["a_intact"] = before == {p.name: p.read_bytes() for p in a.root.iterdir() if p.is_file()}
    rows = RunStore(home).rows()
    out["listed"] = {r["run_id"]: r["status"] for r in rows}
    out["a"] = a.run_id
    print("RESULT " + json.dumps(out))
"""


@pytest.mark.parametrize("mode", ["full", "readonly"])
def test_a_full_or_read_only_disk_gives_a_clear_error_and_loses_nothing(builtin, tmp_path, mode):
    from kdci_core.teachers import builtin_teacher_path

    proc = _namespace_python(DISK_SCRIPT, "64m", tmp_path, MODE=mode, BUILTIN=str(builtin_teacher_path()))
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    assert lines, proc.stdout[-2000:] + proc.stderr[-4000:]
    out = json.loads(lines[-1][7:])
    cause = "the disk is full" if mode == "full" else "read-only"
    assert out["error"] and cause in out["error"] and "unchanged" in out["error"], out
    assert out["a_intact"] and out["listed"][out["a"]] == "finished", out


@pytest.mark.parametrize("name,ok", [
    ("baseline run", True), ("ablation é", True), ("x" * 100, True),
    ("zero\u200bwidth", False), ("tab\tin", False), ("rtl\u202eoverride", False), ("nb\u00a0sp", False),
    ("", False), ("   ", False), ("x" * 101, False), ("hangul\u3164filler", False),
])
def test_run_names_are_printable_labels(name, ok):
    if ok:
        assert validate_run_name(name) == name
    else:
        with pytest.raises(InputError, match="run name"):
            validate_run_name(name)


def test_names_are_nfc_so_lookalikes_are_one_name(store):
    composed, decomposed = "caf\u00e9", "cafe\u0301"
    store.create({"method": "deepinv"}, name=composed)
    with pytest.raises(InputError, match="already exists"):
        store.create({"method": "deepinv"}, name=decomposed)
    assert store.get(decomposed).status()["name"] == composed


def test_a_hostile_run_name_stays_text_in_every_report_format(store, tmp_path):
    from kdci_core.reports import export_report

    evil = "<script>alert(1)</script> | *x* [a](javascript:alert(1))"
    ids = [run_inline(tiny_config(epochs=1, steps_per_epoch=2, kdci=k, k=4), store=store,
                      run_name=f"{evil} {k}").run_id for k in (True, False)]
    paths = export_report(store, ids, tmp_path / "r.html", include_students=False)
    text = {p.suffix: p.read_text() for p in paths}
    assert "<script>alert(1)" not in text[".md"] and "&lt;script&gt;" in text[".md"]
    md = text[".md"]
    assert "\\[a\\](javascript" in md and "[a](javascript" not in md.replace("\\[a\\](", "")  # no link
    assert "\\*x\\*" in md and "\\| \\*x" in md  # no emphasis, no extra table column
    assert "<script>alert(1)" not in text[".html"] and "&lt;script&gt;alert(1)" in text[".html"]
    names = {r["run_id"]: r["name"] for r in json.loads(text[".json"])["comparison"]["runs"]}
    assert set(names.values()) == {f"{evil} True", f"{evil} False"}  # data, exactly as given


@pytest.mark.parametrize("code,cause", [(28, "the disk is full"), (30, "the file system is read-only")])
def test_a_failed_write_keeps_the_old_file_and_leaves_no_temporary(tmp_path, monkeypatch, code, cause):
    """The same as the tmpfs tests without a private mount: the rename target keeps its bytes."""
    from kdci_core.common import jsonio
    from kdci_core.errors import StorageError

    target = tmp_path / "status.json"
    jsonio.atomic_write_json(target, {"status": "finished"})

    def refuse(src, dst):
        raise OSError(code, os.strerror(code))
    monkeypatch.setattr(jsonio.os, "replace", refuse)
    with pytest.raises(StorageError, match=cause) as info:
        jsonio.atomic_write_json(target, {"status": "running"})
    assert str(target) in str(info.value) and "unchanged" in str(info.value)
    assert json.loads(target.read_text()) == {"status": "finished"}
    assert [p.name for p in tmp_path.iterdir()] == ["status.json"]
