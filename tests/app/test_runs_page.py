"""AppTest of the Runs page: launch KDCI on/off runs in background workers, see them in the
table, cancel one, and find everything again from a fresh session (a browser refresh)."""

from __future__ import annotations

from streamlit.testing.v1 import AppTest

from kdci_core.runs import RunStore, wait_for
from tests.helpers import MAIN


def _runs_page() -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.run()
    at.switch_page("../pages/runs.py")
    at.run()
    assert not at.exception, at.exception
    return at


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
    table = fresh.get("arrow_data_frame")
    assert table, "no run table"
    shown = set(table[0].value["run"])
    assert set(ids) <= shown
    assert len(fresh.get("plotly_chart")) == 2  # accuracy and loss monitors


def test_launch_button_disabled_without_methods(builtin):
    at = _runs_page()
    at.multiselect(key="runs_methods").set_value([]).run()
    assert at.button(key="runs_launch").disabled


def test_preset_choice_brings_its_epochs_and_steps(builtin):
    at = _runs_page()
    assert at.radio(key="runs_preset").value == "quick"
    assert (at.number_input(key="runs_epochs").value, at.number_input(key="runs_steps").value) == (10, 50)
    at.radio(key="runs_preset").set_value("paper").run()
    assert (at.number_input(key="runs_epochs").value, at.number_input(key="runs_steps").value) == (200, 400)
