"""AppTests of the run dashboard's W&B-grade features and small fixes: the run table grouped by
any fields without mixing teachers, datasets or schedules; blanks for missing numbers; charts of
a queued run that say they wait; a collapsed student flagged in the table and the run detail
view with its prediction histogram; system metrics in the detail view."""

from __future__ import annotations

import json

from streamlit.testing.v1 import AppTest

from kdci_core.runs import RunStore
from tests.helpers import MAIN, open_page

SHA = "ab" * 32
NAMES = ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"]


def _cfg(**kw):
    return {"method": "deepinv", "kdci": True, "seed": 0, "epochs": 10, "steps_per_epoch": 50, "batch_size": 64,
            "preset": "quick", "lr": 0.01, "teacher": "builtin", "dataset": "digits", "student": "lenet5_half", **kw}


def _finished(store, cfg, acc, *, sha=None, counts=None, history=()):
    run = store.create(cfg)
    run.set_status("running", started_at=100.0)
    for record in history:
        run.append_metrics(record)
    result = {"student_accuracy": acc, "teacher_sha256": sha, "history": list(history)}
    if counts is not None:
        result |= {"prediction_counts": counts, "class_names": NAMES}
    run.write_result(result)
    run.set_status("finished", finished_at=200.0)
    return run.run_id


def _table(at, column):
    return next(d.value for d in at.get("arrow_data_frame") if column in d.value.columns)


def _figures(at) -> list[dict]:
    return [json.loads(c.proto.spec) for c in at.get("plotly_chart")]


def test_grouping_keeps_teachers_datasets_and_schedules_apart(tmp_path, monkeypatch):
    """The issue's runs: digits with the built-in teacher and Fashion-MNIST with a teacher file
    under two schedules, all deepinv / KDCI on: three groups by default, each naming its teacher,
    dataset and schedule; grouping by K as well splits further."""
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    store = RunStore(tmp_path)
    fashion = _cfg(dataset="fashion-mnist", teacher=f"{tmp_path}/uploads/{SHA}/fmnist.pt", teacher_arch="lenet5")
    for seed in (0, 1):
        _finished(store, _cfg(seed=seed, k=8 + 24 * seed), 50.0)
        _finished(store, {**fashion, "seed": seed}, 10.0, sha=SHA)
        _finished(store, {**fashion, "seed": seed, "epochs": 3, "steps_per_epoch": 20}, 20.0, sha=SHA)
    at = open_page("../pages/runs.py")
    at.toggle(key="runs_grouped").set_value(True).run()
    assert at.multiselect(key="runs_group_by").value == ["method", "setting"]
    options = at.multiselect(key="runs_group_by").options
    assert options[0] == "setting" and {"k", "lr", "epochs", "seed"} <= set(options)
    assert "teacher" not in options and "dataset" not in options  # always apart, never a choice
    groups = _table(at, "statuses")
    assert len(groups) == 3 and list(groups["runs"]) == [2, 2, 2]
    assert set(zip(groups["dataset"], groups["schedule"])) == {
        ("digits", "10 x 50 steps, batch 64, quick"), ("fashion-mnist", "10 x 50 steps, batch 64, quick"),
        ("fashion-mnist", "3 x 20 steps, batch 64, quick")}
    assert set(groups["teacher"]) == {"builtin", f"fmnist.pt ({SHA[:8]})"}
    at.multiselect(key="runs_group_by").set_value(["method", "k"]).run()
    assert not at.exception, at.exception
    assert len(_table(at, "statuses")) == 4  # the digits runs differ in K


def test_queued_runs_show_blanks_and_charts_that_wait(tmp_path, monkeypatch):
    """A queued run: its accuracy and lr cells are blank or its value, never "None"; its charts
    say "waiting for the first epoch" (not empty axes from -1 to 6) and count "1 run"."""
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    RunStore(tmp_path).create(_cfg(lr=None))
    at = open_page("../pages/runs.py")
    table = _table(at, "select")
    assert list(table["accuracy %"]) == [""] and list(table["lr"]) == [""]
    assert "None" not in table.astype(str).to_numpy().ravel().tolist()
    figures = _figures(at)
    assert len(figures) == 2
    for fig in figures:
        assert fig["data"] == [] and "(1 run)" in fig["layout"]["title"]["text"]
    assert [f["layout"]["annotations"][0]["text"] for f in figures] == [
        "waiting for the first epoch", "waiting for the first logged steps"]


def test_a_collapsed_run_is_flagged_in_the_table_and_its_detail_view(tmp_path, monkeypatch):
    """A student predicting "Shirt" for every test image: a flag in its table row; in its detail
    view an error naming the class and share, the histogram, the Method card's whole value, and
    the system metrics recorded per epoch as charts."""
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    store = RunStore(tmp_path)
    history = [{"epoch": e, "step": 50 * e, "student_accuracy": 10.0, "loss": 1.0, "cpu_percent": 95.0 + e,
                "rss_mb": 500.0 + e} for e in (1, 2)]
    bad = _finished(store, _cfg(), 10.0, counts=[0] * 6 + [2000] + [0] * 3, history=history)
    good = _finished(store, _cfg(seed=1), 80.0, counts=[200] * 10)
    at = open_page("../pages/runs.py")
    table = _table(at, "select")
    cells = dict(zip(table["run"], table["accuracy %"]))
    assert cells == {bad: "  10.00  ⚠ collapsed: 100% Shirt", good: "  80.00"}

    detail = AppTest.from_file(MAIN, default_timeout=120)
    detail.run()
    detail.switch_page("../pages/runs.py")
    detail.query_params["run"] = bad
    detail.run()
    assert not detail.exception, detail.exception
    assert any("collapsed: predicts Shirt for 100% of the 2,000 test images" in e.value for e in detail.error)
    method = next(m for m in detail.metric if m.label == "Method")
    assert method.value == "deepinv" and method.proto.help == "deepinv, KDCI on"  # not "deepin..."
    accuracy = next(m for m in detail.metric if m.label == "Student accuracy")
    assert accuracy.value == "10.00%" and accuracy.delta == "collapsed"
    titles = [f["layout"]["title"]["text"] for f in _figures(detail)]
    assert "Predicted classes on the 2,000 test images" in titles
    assert any(t.startswith("process CPU (% of one core) over epoch") for t in titles)
    assert any(t.startswith("resident memory (MB) over epoch") for t in titles)
