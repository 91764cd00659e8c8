"""The run table's rows and groups, tags and notes, the index's migration, and the queue."""

from __future__ import annotations

import sqlite3
import threading
import time

from kdci_core.runs import RunStore
from kdci_core.runs.queue import live_ahead, queue_positions
from kdci_core.runs.status import FINISHED, QUEUED, RUNNING
from kdci_core.runs.table import format_seconds, group_fields, groups, table_rows, teacher_label
from kdci_core.runs.worker import slot

SHA = "ab" * 32


def _cfg(**kw):
    return {"method": "deepinv", "kdci": True, "seed": 0, "epochs": 2, "steps_per_epoch": 5,
            "lr": 0.01, "teacher": "builtin", "dataset": "digits", **kw}


def test_rows_carry_teacher_k_lr_steps_duration_eta_and_queue(tmp_path):
    store = RunStore(tmp_path)
    old = store.create(_cfg(seed=1))  # queued first
    new = store.create(_cfg(seed=2, kdci=False, teacher=f"/h/uploads/{SHA}/model.pt"))
    running = store.create(_cfg(k=8))
    running.set_status(RUNNING, started_at=1000.0)
    running.write_progress({"step": 4, "total_steps": 10, "steps_per_s": 2.0, "eta_s": 3.0, "at": 1005.0})
    done = store.create(_cfg(correction="balanced"))
    done.set_status(RUNNING, started_at=100.0)
    done.set_status(FINISHED, finished_at=190.0)
    rows = {r["run"]: r for r in table_rows(store, now=1006.0)}
    assert rows[old.run_id]["queue"] == 1 and rows[new.run_id]["queue"] == 2
    assert rows[running.run_id]["queue"] is None
    assert rows[new.run_id]["teacher"] == f"model.pt ({SHA[:8]})" and rows[old.run_id]["teacher"] == "builtin"
    assert rows[new.run_id]["K"] == "" and rows[old.run_id]["K"] == "default" and rows[running.run_id]["K"] == "8"
    r = rows[running.run_id]
    assert (r["step"], r["total_steps"], r["lr"]) == (4, 10, 0.01)
    assert r["duration_s"] == 6.0 and r["eta_s"] == 2.0  # 3 s at t=1005, 1 s later
    assert rows[done.run_id]["duration_s"] == 90.0 and rows[done.run_id]["eta_s"] is None
    assert rows[done.run_id]["setting"] == "KDCI on, correction balanced"


def test_groups_summarise_method_by_setting(tmp_path):
    rows = [{"method": "dafl", "setting": "KDCI on", "status": FINISHED, "accuracy": a, "seed": s}
            for s, a in enumerate((70.0, 74.0))]
    rows += [{"method": "dafl", "setting": "KDCI off", "status": st, "accuracy": None, "seed": 0}
             for st in (RUNNING, QUEUED)]
    g = {(x["method"], x["setting"]): x for x in groups(rows)}
    on = g[("dafl", "KDCI on")]
    assert (on["runs"], on["finished"], on["mean accuracy"], round(on["std"], 3)) == (2, 2, 72.0, 2.828)
    assert g[("dafl", "KDCI off")]["statuses"] == "1 queued, 1 running"
    assert g[("dafl", "KDCI off")]["mean accuracy"] is None


def test_tags_and_notes_are_kept_indexed_and_searchable(tmp_path):
    store = RunStore(tmp_path)
    a, b = store.create(_cfg()), store.create(_cfg(seed=1))
    assert a.annotate(tags=["baseline", " paper ", ""], notes="first try") == {
        "tags": ["baseline", "paper"], "notes": "first try"}
    b.annotate(notes="uses the new lr")
    assert [r["run_id"] for r in store.rows(tag="paper")] == [a.run_id]
    assert {r["run_id"] for r in store.rows(text="new lr")} == {b.run_id}
    assert RunStore(tmp_path).get(a.run_id).annotations()["tags"] == ["baseline", "paper"]
    a.annotate(tags=[])  # notes kept
    assert a.annotations() == {"tags": [], "notes": "first try"}


def test_an_index_of_an_older_release_is_rebuilt_from_the_folders(tmp_path):
    store = RunStore(tmp_path)
    run = store.create(_cfg())
    with sqlite3.connect(tmp_path / "index.sqlite") as db:  # the 0.1 schema: fewer columns
        db.execute("DROP TABLE runs")
        db.execute("CREATE TABLE runs (run_id TEXT PRIMARY KEY, status TEXT)")
    again = RunStore(tmp_path)
    assert [r["run_id"] for r in again.rows()] == [run.run_id]
    assert again.rows()[0]["tags"] == []


def test_format_seconds():
    assert [format_seconds(s) for s in (None, 42.4, 185, 3725)] == ["", "42 s", "3 min 05 s", "1 h 02 min"]
    assert teacher_label({"teacher": "/x/teacher.pt"}, None) == "teacher.pt"


def test_queued_runs_wait_for_older_live_ones(tmp_path):
    """A worker does not take a free slot while an older queued run with a live worker waits."""
    store = RunStore(tmp_path)
    older, newer = store.create(_cfg()), store.create(_cfg(seed=1))
    beats = {older.run_id: time.time()}
    assert queue_positions(store.index) == {older.run_id: 1, newer.run_id: 2}
    assert live_ahead(store.index, newer.run_id, beats.get) == 1
    assert live_ahead(store.index, newer.run_id, lambda r: None) == 0  # no worker: not waiting
    older.heartbeat()
    got = threading.Event()

    def take():
        with slot(tmp_path, 1, newer):
            got.set()

    t = threading.Thread(target=take, daemon=True)
    t.start()
    seen = set()
    while len(seen) < 3:  # the newer worker has polled (and heartbeaten) several times
        older.heartbeat()
        beat = newer.last_heartbeat()
        if beat is not None:
            seen.add(beat)
        time.sleep(0.05)
    assert not got.is_set()
    older.set_status(RUNNING)  # the older run leaves the queue (it took its slot elsewhere)
    t.join(timeout=60)
    assert got.is_set()


def _finished(store, cfg, acc, *, sha=None, counts=None):
    run = store.create(cfg)
    run.set_status(RUNNING, started_at=100.0)
    result = {"student_accuracy": acc, "teacher_sha256": sha}
    if counts is not None:
        result |= {"prediction_counts": counts, "class_names": [f"c{i}" for i in range(len(counts))]}
    run.write_result(result)
    run.set_status(FINISHED, finished_at=200.0)
    return run.run_id


def test_groups_never_mix_teachers_datasets_or_schedules(tmp_path):
    """The issue's example: digits runs with the built-in teacher and Fashion-MNIST runs of a
    teacher file under two schedules, all "deepinv / KDCI on", were one group of 6 (mean 25.60);
    they are three groups, each row naming its teacher, dataset and schedule."""
    store = RunStore(tmp_path)
    digits = _cfg(epochs=10, steps_per_epoch=50, batch_size=64, preset="quick")
    fashion = _cfg(dataset="fashion-mnist", teacher=f"/h/uploads/{SHA}/fmnist.pt", teacher_arch="lenet5",
                   epochs=10, steps_per_epoch=50, batch_size=64, preset="quick")
    for seed, acc in ((0, 50.0), (1, 52.0)):
        _finished(store, {**digits, "seed": seed}, acc)
        _finished(store, {**fashion, "seed": seed}, acc - 40, sha=SHA)
        _finished(store, {**fashion, "seed": seed, "epochs": 3, "steps_per_epoch": 20}, acc - 30, sha=SHA)
    out = groups(table_rows(store))
    assert len(out) == 3 and all(g["runs"] == 2 for g in out)
    by = {(g["dataset"], g["schedule"]): g for g in out}
    assert set(by) == {("digits", "10 x 50 steps, batch 64, quick"), ("fashion-mnist", "10 x 50 steps, batch 64, quick"),
                       ("fashion-mnist", "3 x 20 steps, batch 64, quick")}
    assert by[("digits", "10 x 50 steps, batch 64, quick")]["teacher"] == "builtin"
    assert by[("fashion-mnist", "3 x 20 steps, batch 64, quick")]["teacher"] == f"fmnist.pt ({SHA[:8]})"
    assert by[("digits", "10 x 50 steps, batch 64, quick")]["mean accuracy"] == 51.0
    assert {g["method"] for g in out} == {"deepinv"} and {g["setting"] for g in out} == {"KDCI on"}


def test_two_teachers_of_one_name_stay_apart_and_any_field_groups(tmp_path):
    """Teachers are told apart by their file's sha256, not their name; grouping by any config
    field (here K) splits further; the fields offered are the ones the runs' configs have."""
    store = RunStore(tmp_path)
    other = "cd" * 32
    for sha in (SHA, other):
        for k in (8, 32):
            _finished(store, _cfg(teacher="/models/teacher.pt", teacher_arch="lenet5", k=k), 60.0, sha=sha)
    rows = table_rows(store)
    assert len(groups(rows)) == 2  # one per teacher, whatever the file is called
    assert {g["teacher"] for g in groups(rows)} == {f"teacher.pt ({SHA[:8]})", f"teacher.pt ({other[:8]})"}
    by_k = groups(rows, ["method", "k"])
    assert len(by_k) == 4 and {g["k"] for g in by_k} == {"8", "32"}
    fields = group_fields(rows)
    assert fields[0] == "setting" and {"k", "lr", "method", "seed"} <= set(fields)
    assert "teacher" not in fields and "dataset" not in fields  # always apart, never chosen


def test_one_folder_spelled_two_ways_is_one_group(tmp_path):
    """A data root typed through a symlink (the command line) and resolved (the pages) is one
    value: grouping by it makes one group."""
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    store = RunStore(tmp_path / "home")
    _finished(store, _cfg(data_root=str(tmp_path / "link")), 50.0)
    _finished(store, _cfg(data_root=str(data), seed=1), 52.0)
    out = groups(table_rows(store), ["method", "data_root"])
    assert len(out) == 1 and out[0]["data_root"] == str(data.resolve())


def test_a_collapsed_student_is_flagged_in_its_row_and_its_group(tmp_path):
    """A student predicting one class for more than 80% of the test images is flagged (from the
    histogram in its result, kept in the index); one at 80% exactly, or without a histogram, is not."""
    store = RunStore(tmp_path)
    bad = _finished(store, _cfg(), 10.0, counts=[0, 0, 0, 0, 0, 0, 360, 0, 0, 0])
    edge = _finished(store, _cfg(seed=1), 40.0, counts=[72, 288])
    old = _finished(store, _cfg(seed=2), 40.0)
    rows = {r["run"]: r for r in table_rows(RunStore(tmp_path))}
    assert rows[bad]["collapsed"] and (rows[bad]["top_class"], rows[bad]["top_share"]) == ("c6", 1.0)
    assert not rows[edge]["collapsed"] and rows[edge]["top_share"] == 0.8
    assert not rows[old]["collapsed"] and rows[old]["top_share"] is None
    assert groups(list(rows.values()))[0]["collapsed"] == 1
