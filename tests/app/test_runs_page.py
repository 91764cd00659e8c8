"""AppTest of the Runs page: launch KDCI on/off runs in background workers, see them in the
table, cancel one, and find everything again from a fresh session (a browser refresh)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from kdci_core.runs import RunStore, wait_for
from tests.helpers import MAIN, open_page


def _runs_page() -> AppTest:
    return open_page("../pages/runs.py")


def test_launch_from_the_page_and_see_runs_after_a_refresh(builtin):
    at = _runs_page()
    assert [t.value for t in at.title] == ["Runs"]
    at.number_input(key="runs_seeds").set_value(1)
    at.number_input(key="runs_epochs").set_value(2)
    at.number_input(key="runs_steps").set_value(5)
    at.selectbox(key="runs_correction").set_value("reweight")
    at.run()
    assert at.button(key="runs_launch").label == "Launch 2 runs"
    at.button(key="runs_launch").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    ids = at.session_state["runs_selected"]
    assert len(ids) == 2
    store = RunStore()
    assert wait_for(store, ids, timeout=180) == {i: "finished" for i in ids}
    assert {store.get(i).config()["correction"] for i in ids} == {"reweight"}  # recorded in each run

    fresh = _runs_page()  # a new session: what a browser refresh sees
    table = [d for d in fresh.get("arrow_data_frame") if "run" in d.value.columns]
    assert table, "no run table"
    shown = set(table[0].value["run"])
    # the form remembers its last values in a new session (a refresh, a server restart)
    assert (fresh.number_input(key="runs_epochs").value, fresh.number_input(key="runs_steps").value) == (2, 5)
    assert fresh.selectbox(key="runs_correction").value == "reweight"
    assert set(ids) <= shown
    assert len(fresh.get("plotly_chart")) == 2  # accuracy and loss monitors


def test_launch_button_disabled_without_methods(builtin):
    at = _runs_page()
    at.multiselect(key="runs_methods").set_value([]).run()
    assert at.button(key="runs_launch").disabled


def test_preset_choice_brings_its_epochs_and_steps(builtin):
    at = _runs_page()
    assert at.radio(key="runs_preset").value == "quick"
    at.radio(key="runs_preset").set_value("paper").run()
    assert (at.number_input(key="runs_epochs").value, at.number_input(key="runs_steps").value,
            at.number_input(key="runs_batch").value) == (200, 400, 256)
    at.radio(key="runs_preset").set_value("quick").run()
    assert (at.number_input(key="runs_epochs").value, at.number_input(key="runs_steps").value) == (10, 50)


def test_sweep_builder_counts_and_page_errors_name_page_fields(builtin):
    at = _runs_page()
    at.multiselect(key="runs_methods").set_value(["deepinv", "dfnd"])
    at.checkbox(key="runs_on").check()
    at.checkbox(key="runs_off").check()
    at.number_input(key="runs_seeds").set_value(2)
    at.text_input(key="runs_ks").set_value("4, 8").run()
    # KDCI-on runs at each K, KDCI-off runs once: 2 methods x (2 K + 1) x 2 seeds
    assert at.button(key="runs_launch").label == "Launch 12 runs"
    at.text_input(key="runs_ks").set_value("4, x").run()
    assert at.button(key="runs_launch").disabled
    assert any("'K values'" in e.value and "--k" not in e.value for e in at.error)
    at.text_input(key="runs_ks").set_value("100000000").run()
    assert any("'K values'" in e.value for e in at.error)
    at.text_input(key="runs_ks").set_value("").run()
    assert not at.error


def test_run_detail_view_of_a_finished_run(builtin, tmp_path, monkeypatch):
    """?run=ID: config, status history, log, artefacts and the actions a finished run allows;
    export and delete work from the page."""
    from kdci_core.runs import RunStore as Store, run_inline
    from tests.helpers import tiny_config

    import shutil

    from kdci_core.teachers import builtin_teacher_path
    (tmp_path / "teachers").mkdir()
    shutil.copy(builtin_teacher_path(), tmp_path / "teachers" / builtin_teacher_path().name)
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    store = Store(tmp_path)
    run_id = run_inline(tiny_config(method="dfnd", kdci=True, k=4), store=store).run_id
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page("../pages/runs.py")
    at.query_params["run"] = run_id
    at.run()
    assert not at.exception, at.exception
    assert any(h.value == f"Run {run_id}" for h in at.subheader)
    assert [m.value for m in at.metric][:1] == ["finished"]
    fields = set(_frame(at, ["field", "value"])["field"])
    assert {"method", "kdci", "preset", "correction", "weight_decay"} <= fields
    history = _frame(at, ["status", "at", "error"])
    assert list(history["status"]) == ["queued", "running", "finished"]
    assert "student.safetensors" in set(_frame(at, ["file", "KiB"])["file"])
    assert not [b for b in at.button if b.key == f"detail_cancel_{run_id}"]  # nothing to cancel
    assert [m.value for m in at.metric if m.label == "Step"] == ["10/10"]
    at.text_input(key=f"detail_tags_{run_id}").set_value("keep, paper")
    at.text_area(key=f"detail_text_{run_id}").set_value("the reference run")
    next(b for b in at.button if b.label == "Save tags and notes").click().run()
    assert store.get(run_id).annotations() == {"tags": ["keep", "paper"], "notes": "the reference run"}
    at.radio(key=f"detail_fmt_{run_id}").set_value("torchscript")
    at.button(key=f"detail_export_{run_id}").click().run()
    assert not at.exception and at.session_state[f"detail_export_files_{run_id}"]["fmt"] == "torchscript"
    at.checkbox(key=f"detail_confirm_{run_id}").check().run()
    at.button(key=f"detail_delete_{run_id}").click().run()
    assert not (tmp_path / "runs" / run_id).exists()


def _frame(at, columns):
    """The value of the dataframe shown with exactly these columns."""
    return next(d.value for d in at.dataframe if list(d.value.columns) == columns)


def test_selection_survives_refreshes_and_drives_the_actions(tmp_path, monkeypatch):
    """A selection kept by an earlier session (a refreshed browser) is drawn into the table,
    holds across reruns, and Cancel acts on it in one click; tags typed in the table are kept."""
    from app.run_table import apply_edits

    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    store = RunStore(tmp_path)
    cfg = {"method": "deepinv", "kdci": True, "seed": 0, "epochs": 2, "steps_per_epoch": 5,
           "teacher": "builtin", "dataset": "digits", "lr": 0.01}
    waiting = store.create(cfg)  # queued, no worker yet
    other = store.create({**cfg, "seed": 1})
    from app.run_table import PICKED
    from app.shared import remember

    remember(PICKED, [waiting.run_id])  # what an earlier session selected
    at = _runs_page()
    table = next(d.value for d in at.get("arrow_data_frame") if "select" in d.value.columns)
    assert {"teacher", "K", "lr", "step", "duration", "ETA", "queue", "tags", "notes"} <= set(table.columns)
    ticked = dict(zip(table["run"], table["select"]))
    assert ticked == {waiting.run_id: True, other.run_id: False}
    assert dict(zip(table["run"], table["queue"])) == {waiting.run_id: "#1", other.run_id: "#2"}
    for _ in range(2):  # the live refresh: the selection and its buttons stay
        at.run()
    assert at.button(key="runs_cancel").label == "Cancel (1)"
    at.button(key="runs_cancel").click().run()
    assert store.get(waiting.run_id).status()["status"] == "cancelled"
    assert store.get(other.run_id).status()["status"] == "queued"
    # what the table's editor reports for a tick and a typed tag (AppTest cannot type in it)
    shown = [other.run_id, waiting.run_id]
    chosen = apply_edits([waiting.run_id], shown, {"0": {"select": True, "tags": "lr sweep, seed 1"},
                                                    "1": {"select": False}}, store)
    assert chosen == [other.run_id]
    assert store.get(other.run_id).annotations()["tags"] == ["lr sweep", "seed 1"]
    at.toggle(key="runs_grouped").set_value(True).run()
    groups = next(d.value for d in at.get("arrow_data_frame") if "statuses" in d.value.columns)
    assert list(groups["runs"]) == [2]


def test_launch_form_paths_only_from_the_allowed_folders(builtin, tmp_path, monkeypatch):
    """'Wild data' and 'Dictionary source' outside the operator's folders disable Launch with the
    folders listed; paths inside, and wild data that is not a path, are accepted."""
    allowed = tmp_path / "allowed"
    monkeypatch.setenv("KDCI_ALLOWED_ROOTS", str(allowed))
    at = _runs_page()
    at.text_input(key="runs_wild").set_value("/etc").run()
    assert at.button(key="runs_launch").disabled
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("'Wild data': expected a path under one of the folders"), errors
    assert str(allowed.resolve()) in errors[0] and "--" not in errors[0]
    at.text_input(key="runs_wild").set_value("dataset:digits").run()
    assert not at.error and not at.button(key="runs_launch").disabled
    at.text_input(key="runs_dict_arch").set_value("lenet5")
    at.text_input(key="runs_dict_src").set_value(str(tmp_path / "other.safetensors")).run()
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("'Dictionary source': expected a path under"), errors
    assert at.button(key="runs_launch").disabled
    at.text_input(key="runs_wild").set_value(str(allowed / "imgs"))
    at.text_input(key="runs_dict_src").set_value(str(allowed / "src.safetensors")).run()
    assert not at.error and not at.button(key="runs_launch").disabled
