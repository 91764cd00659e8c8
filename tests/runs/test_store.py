"""The on-disk run store: plain files, readable without the app, robust to torn writes."""

import json

import pytest

from kdci_core.cli import main
from kdci_core.errors import InputError
from kdci_core.runs import RunStore, validate_run_id


def test_create_status_metrics_result(tmp_path):
    store = RunStore(tmp_path)
    run = store.create({"method": "deepinv", "kdci": True})
    assert run.status()["status"] == "queued"
    run.set_status("running", pid=123)
    run.append_metrics({"epoch": 1, "student_accuracy": 50.0})
    run.append_metrics({"epoch": 2, "student_accuracy": 60.0})
    run.write_result({"student_accuracy": 60.0})
    run.set_status("finished", pid=None)
    # a new store object (a restarted server) sees the same run from the files alone
    again = RunStore(tmp_path).get(run.run_id)
    summary = again.summary()
    assert summary["status"] == "finished" and summary["config"]["method"] == "deepinv"
    assert [h["epoch"] for h in summary["history"]] == [1, 2]
    assert json.loads((tmp_path / "runs" / run.run_id / "result.json").read_text())["student_accuracy"] == 60.0
    assert [r.run_id for r in RunStore(tmp_path).list()] == [run.run_id]


def test_torn_last_metrics_line_is_skipped(tmp_path):
    run = RunStore(tmp_path).create({"method": "dfnd"})
    run.append_metrics({"epoch": 1, "loss": 1.0})
    with open(run.path("metrics.jsonl"), "a") as f:
        f.write('{"epoch": 2, "lo')  # a worker killed mid-write
    assert run.metrics() == [{"epoch": 1, "loss": 1.0}]


@pytest.mark.parametrize("bad", ["../x", "a/b", "", ".hidden", "a" * 200, "a\\b"])
def test_bad_run_ids_rejected(bad):
    with pytest.raises(InputError, match="run id"):
        validate_run_id(bad)


def test_unknown_run_and_duplicate_name(tmp_path):
    store = RunStore(tmp_path)
    with pytest.raises(InputError, match="no such run"):
        store.get("does-not-exist")
    store.create({"method": "deepinv"}, name="mine")
    with pytest.raises(InputError, match="already exists"):
        store.create({"method": "deepinv"}, name="mine")


def test_a_run_name_is_a_label_never_a_path(builtin, capsys):
    """``--name ../escape`` labels the run; its folder is the generated id inside the store."""
    assert main(["distill", "--teacher", "builtin", "--student", "lenet5_half", "--dataset", "digits",
                 "--method", "deepinv", "--kdci", "off", "--name", "../escape", "--epochs", "1",
                 "--steps-per-epoch", "1", "--quiet"]) == 0
    store = RunStore()
    run = store.get("../escape")  # found by its name
    assert run.root.parent == store.runs_dir and run.run_id.endswith(tuple("0123456789abcdef"))
    assert run.status()["name"] == "../escape" and not (store.home / "escape").exists()


def test_reconcile_repairs_an_index_row_that_lags_its_folder(tmp_path):
    """A listing read between a worker's status write and its index update (or an index write
    that gave up on a locked database) must not leave the run table wrong for good."""
    from kdci_core.common.jsonio import atomic_write_json
    from kdci_core.runs import reconcile

    store = RunStore(tmp_path)
    run = store.create({"method": "deepinv", "kdci": True})
    run.set_status("running", pid=None)
    state = dict(run.status(), status="finished")
    atomic_write_json(run.path("status.json"), state)  # the folder moved on, the index did not
    assert store.rows()[0]["status"] == "running"
    assert reconcile(store) == []  # nothing died
    assert store.rows()[0]["status"] == "finished"


def test_threads_of_one_process_write_the_same_file_at_once(tmp_path):
    """A worker's heartbeat thread and its main thread (waiting for a slot) both beat: the
    temporary file of an atomic write is per thread, so neither rename loses the other's file."""
    import threading

    run = RunStore(tmp_path).create({"method": "deepinv"})
    errors: list[BaseException] = []
    start = threading.Barrier(4)

    def beat():
        start.wait()
        try:
            for _ in range(300):
                run.heartbeat()
                run.set_status("queued")
        except BaseException as exc:  # noqa: BLE001 (collected, asserted below)
            errors.append(exc)

    threads = [threading.Thread(target=beat) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and run.last_heartbeat() is not None
    assert not list(run.root.glob(".*.tmp"))
