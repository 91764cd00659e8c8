"""AppTest over the Compare page: four tiny finished runs (KDCI on/off x seeds 0, 1) are
preselected by default or by a ``?runs=`` deep link; tables, gain, curves, students and the
report's download buttons render without an exception."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import MAIN, finished_runs

PAGE = "../pages/compare.py"


@pytest.fixture(scope="module")
def runs(builtin):
    return finished_runs()  # the same four runs as tests/reports/test_reports.py


@pytest.fixture
def home(runs, monkeypatch):
    store, ids = runs
    monkeypatch.setenv("KDCI_HOME", str(store.home))
    return ids


def _page(link: str | None = None) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.switch_page(PAGE)  # straight to Compare: the Teacher page is not rendered first
    if link is not None:
        at.query_params["runs"] = link
    at.run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Compare runs"]
    return at


def _charts(at) -> tuple[list[dict], list[dict]]:
    """The page's plotly figures: (the collapsed students' prediction histograms, the others).
    How many of these tiny runs collapse is theirs to say: counted apart."""
    figs = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    hist = [f for f in figs if f["layout"]["title"]["text"].endswith(": predicted classes")]
    return hist, [f for f in figs if f not in hist]


def _collapsed(ids) -> set:
    from kdci_core.runs import RunStore
    from kdci_core.runs.collapse import prediction_summary

    store = RunStore()
    return {i for i in ids if prediction_summary(store.get(i).result())["collapsed"]}


def test_default_selection_and_tables(home):
    ids = home
    at = _page()
    assert all("collapsed: predicts" in e.value for e in at.error), at.error  # flagged students only
    assert set(at.multiselect(key="cmp_runs").value) == set(ids.values())
    tables = at.dataframe
    assert len(tables) == 7  # final accuracy, gain, pairs, predictions, KDCI telemetry, configs per run, shared
    per_run, shared = tables[5].value, tables[6].value
    assert set(per_run["run"]) == set(ids.values()) and {"kdci", "seed", "command"} <= set(per_run.columns)
    assert all(c.startswith("python -m kdci_core distill ") for c in per_run["command"])
    assert "method" in set(shared["field"]) and "kdci" not in set(shared["field"])
    assert any(e.label.startswith("Run configurations: ") and e.label.endswith(" differ") for e in at.expander)
    predictions = tables[3].value
    collapsed = _collapsed(ids.values())
    assert set(predictions["run"]) == set(ids.values())
    assert {r for r, c in zip(predictions["run"], predictions["collapsed"]) if c == "yes"} == collapsed
    flagged = [e.value for e in at.error if "collapsed: predicts" in e.value]
    assert len(flagged) == len(collapsed) and all(any(i in f for f in flagged) for i in collapsed)
    telemetry = tables[4].value
    assert len(telemetry) == 2 and set(telemetry["run"]) == {ids[(True, 0)], ids[(True, 1)]}
    assert "compensation / logit spread" in telemetry.columns
    acc = tables[0].value
    assert list(acc["KDCI"]) == ["on", "off"] and list(acc["seeds"]) == [2, 2]
    assert list(tables[2].value["seed"]) == [0, 1]
    hist, others = _charts(at)
    assert len(hist) == len(collapsed) and len(others) == 3  # gain, the sweep, curves
    sweep = next(f for f in others if f["data"] and f["data"][0]["type"] == "parcoords")
    assert [d["label"] for d in sweep["data"][0]["dimensions"]] == ["kdci", "final accuracy (%)"]
    assert set(at.query_params["runs"][0].split(",")) == set(ids.values())  # a shareable link
    chips = at.multiselect(key="cmp_runs")  # readable chips: Streamlit cuts them at 128 px
    for (kdci, seed), run_id in ids.items():
        label = f"seed {seed} · KDCI {'on' if kdci else 'off'} · deepinv · {run_id[-6:]}"
        assert chips.format_func(run_id) == label and label in chips.options
    assert all(len(o.split(" · deepinv")[0]) <= 17 for o in chips.options)  # seed, setting: ~107 px
    pair = at.selectbox(key="cmp_pair")
    assert pair.options[0].startswith("deepinv · seed 0 · ") and ids[(True, 0)] not in pair.options[0]


def test_query_param_preselects(home):
    ids = home
    pick = [ids[(True, 0)], ids[(False, 0)]]
    at = _page(",".join(pick))
    assert at.multiselect(key="cmp_runs").value == pick
    acc = at.dataframe[0].value
    assert list(acc["seeds"]) == [1, 1]
    at2 = _page(f"{ids[(True, 1)]},not-a-run")
    assert at2.multiselect(key="cmp_runs").value == [ids[(True, 1)]]
    assert any("not-a-run" in w.value for w in at2.warning)
    assert any("No KDCI-on run" in i.value for i in at2.info)  # one setting only: no gain


def test_curve_controls(home):
    at = _page()
    at.slider(key="cmp_smooth").set_value(0.6)
    at.radio(key="cmp_x").set_value("wall_time")
    at.radio(key="cmp_y").set_value("loss").run()
    assert not at.exception, at.exception
    assert len(_charts(at)[1]) == 3


def test_students_and_report_downloads(home):
    at = _page()
    at.radio(key="cmp_proj").set_value("pca")
    at.button(key="cmp_students_go").click().run()
    assert not at.exception, at.exception
    assert len(_charts(at)[1]) == 7  # + embedding, per-class delta, fixed, broken
    assert any("Corrected examples" in c.value for c in at.caption)
    at.run()  # served from st.cache_data: its progress bar is not replayed, nothing breaks
    assert not at.exception and len(_charts(at)[1]) == 7
    at.checkbox(key="cmp_report_students").uncheck()
    at.button(key="cmp_report_go").click().run()
    assert not at.exception, at.exception
    assert all("collapsed" in e.value for e in at.error)  # the only errors: collapsed students
    assert len(at.get("download_button")) == 3


def test_no_finished_runs(runs, monkeypatch, tmp_path):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    at = _page()
    assert any("Runs page" in i.value for i in at.info)


def test_compare_by_a_field_the_runs_differ_in(home, tmp_path, monkeypatch):
    """Runs that differ only in their correction compare by it; the page offers that field."""
    from kdci_core.runs import RunStore
    from tests.helpers import tiny_config

    store = RunStore(tmp_path / "by-correction")
    ids = []
    for correction, acc in (("none", 50.0), ("balanced", 55.0)):
        for seed in (0, 1):
            run = store.create(tiny_config(kdci=False, seed=seed, correction=correction).to_dict())
            run.write_result({"student_accuracy": acc + seed, "history": []})
            run.set_status("running")
            run.set_status("finished")
            ids.append(run.run_id)
    monkeypatch.setenv("KDCI_HOME", str(store.home))
    at = _page(",".join(ids))
    assert "correction" in at.selectbox(key="cmp_field").options
    at.selectbox(key="cmp_field").set_value("correction").run()
    assert not at.exception and [h.value for h in at.subheader][1].startswith("Gain of correction")
    gain = at.dataframe[1].value
    assert list(gain["correction"]) == ["balanced"] and list(gain["pairs"]) == [2]
