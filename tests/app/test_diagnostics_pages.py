"""AppTest over the Substitution data and Confounder dictionary pages on the built-in teacher:
they render without an exception, make data on a click, and show the figures and numbers."""

from __future__ import annotations

import json

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import open_page


def _page(path: str) -> AppTest:
    return open_page(path, timeout=300)


def _metric(at, label):
    found = [m for m in at.metric if m.label == label]
    assert found, f"no {label!r} metric; metrics: {[m.label for m in at.metric]}"
    return found[0].value


@pytest.fixture(scope="module")
def substitution_page(builtin):
    from app.shared import remember

    remember("teacher", None)  # the dashboard remembers its last teacher: an earlier test's upload
    at = _page("../pages/substitution.py")
    assert [t.value for t in at.title] == ["Substitution data"]
    at.number_input(key="sub_rounds").set_value(2)
    at.button(key="sub_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    return at


def test_substitution_page_shows_shift(substitution_page):
    at = substitution_page
    assert _metric(at, "Images") == "128"  # 2 rounds of DeepInv's 64 images
    assert float(_metric(at, "FID vs test split")) > 0
    assert 0 < float(_metric(at, "Normalised entropy")) <= 1
    assert any("FID extractor" in c.value for c in at.caption)
    charts = at.get("plotly_chart")
    assert len(charts) == 3  # grid, proportions, rounds
    # the grid is a stratified sample: a row per pseudo-label, each with its share of all images
    grid = json.loads(charts[0].proto.spec)
    rows = [a["text"] for a in grid["layout"]["annotations"]]
    assert len(rows) == 10 and all(r.endswith("% of 128") for r in rows)
    assert sum(float(r.split(": ")[1].split("%")[0]) for r in rows) == pytest.approx(100, abs=5)


def test_substitution_page_sampling_method(substitution_page):
    at = substitution_page
    at.selectbox(key="sub_method").set_value("dfnd").run()
    assert at.number_input(key="sub_rounds").disabled
    assert at.button(key="sub_go").label == "Sample substitution data"
    at.selectbox(key="sub_fid").set_value("none").run()
    at.button(key="sub_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert _metric(at, "Images") == "2,000"
    grid = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert all(a["text"].endswith("% of 2,000") for a in grid["layout"]["annotations"])
    assert not [m for m in at.metric if m.label == "FID vs test split"]
    assert any("selects its data once" in i.value for i in at.info)


def test_dictionary_page_uses_existing_data_and_recommends_k(substitution_page):
    at = _page("../pages/dictionary.py")  # same server-wide store as the page above
    assert [t.value for t in at.title] == ["Confounder dictionary"]
    assert not at.error, at.error
    assert len(at.get("plotly_chart")) == 3  # projection, P(z), K curve
    rec = [m.value for m in at.markdown if "Recommended K" in m.value]
    assert rec and "default in the paper: 32" in rec[0]
    at.number_input(key="dict_k").set_value(5).run()
    assert any("K' = 5" in c.value or "K' = 4" in c.value for c in at.caption)
    at.radio(key="dict_view").set_value("tsne").run()
    assert not at.exception and not at.error


def test_dictionary_page_makes_data_on_request(substitution_page):
    at = _page("../pages/dictionary.py")
    at.selectbox(key="dict_method").set_value("fast").run()
    assert at.button(key="dict_make").label.startswith("Make fast")
    at.button(key="dict_make").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert len(at.get("plotly_chart")) == 3


def test_dictionary_page_carries_k_to_the_launch_form(substitution_page):
    """'Launch with the recommended K' opens the Runs page's form with this method and K."""
    at = _page("../pages/dictionary.py")
    rec = [m.value for m in at.markdown if "Recommended K" in m.value][0]
    k = int(rec.split("Recommended K = ")[1].split("*")[0])
    at.number_input(key="dict_k").set_value(k + 1 if k < 20 else k - 1).run()
    assert at.button(key="dict_launch_chosen").label.endswith(f"K = {k + 1 if k < 20 else k - 1}")
    at.button(key="dict_launch_recommended").click().run()
    assert not at.exception, at.exception
    assert [t.value for t in at.title] == ["Runs"]
    assert at.text_input(key="runs_ks").value == str(k)
    assert at.multiselect(key="runs_methods").value == ["deepinv"]
    assert at.checkbox(key="runs_on").value
    assert any("1 method(s) x" in c.value for c in at.caption)


def _diagnosis_folder(method: str):
    import os
    from pathlib import Path

    return Path(os.environ["KDCI_HOME"]) / "diagnoses" / "builtin-digits" / method


def test_a_restarted_server_finds_the_substitution_data(substitution_page):
    """A server restart empties every cache: the diagnosis is read back from the run store."""
    import streamlit as st

    assert (_diagnosis_folder("deepinv") / "diagnosis.json").is_file()
    st.cache_resource.clear()  # what a new server process starts with
    at = _page("../pages/substitution.py")
    assert not at.exception and not at.error and not at.warning, (at.exception, at.error, at.warning)
    assert _metric(at, "Images") == "128" and len(at.get("plotly_chart")) == 3
    st.cache_resource.clear()
    dictionary = _page("../pages/dictionary.py")
    assert not [b for b in dictionary.button if b.key == "dict_make"]  # nothing to make again
    assert len(dictionary.get("plotly_chart")) == 3


def test_a_corrupt_saved_diagnosis_is_treated_as_absent(substitution_page):
    """A torn file neither breaks the page nor passes for data: the page says so, offers to make
    the data again, and the new diagnosis replaces the broken one."""
    import streamlit as st

    at = _page("../pages/dictionary.py")
    at.selectbox(key="dict_method").set_value("dfnd").run()
    if [b for b in at.button if b.key == "dict_make"]:
        at.button(key="dict_make").click().run()
    folder = _diagnosis_folder("dfnd")
    tensors = next(folder.glob("tensors-*.safetensors"))
    tensors.write_bytes(b"torn")
    st.cache_resource.clear()
    at = _page("../pages/dictionary.py")
    at.selectbox(key="dict_method").set_value("dfnd").run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert any("dfnd could not be read" in w.value and "treated as absent" in w.value for w in at.warning)
    assert at.button(key="dict_make").label.startswith("Make dfnd")
    at.button(key="dict_make").click().run()
    assert not at.exception and not at.error and not at.warning, (at.exception, at.error, at.warning)
    assert len(at.get("plotly_chart")) == 3


def test_wild_data_only_from_the_allowed_folders(builtin, tmp_path, monkeypatch):
    """'Wild data' outside the operator's folders is refused before any work, nothing kept; a
    folder inside is sampled from. (Last in this module: it replaces dfnd's kept diagnosis.)"""
    import numpy as np
    import streamlit as st
    from PIL import Image

    allowed = tmp_path / "allowed"
    (allowed / "imgs").mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(160):  # DFND's K (128) must not exceed the images it selects
        Image.fromarray(rng.integers(0, 255, (16, 16, 3), dtype=np.uint8)).save(allowed / "imgs" / f"{i}.png")
    monkeypatch.setenv("KDCI_ALLOWED_ROOTS", str(allowed))
    st.cache_resource.clear()
    kept = _diagnosis_folder("dfnd") / "diagnosis.json"
    before = kept.stat().st_mtime_ns if kept.exists() else None
    at = _page("../pages/substitution.py")
    at.selectbox(key="sub_method").set_value("dfnd").run()
    at.selectbox(key="sub_fid").set_value("none")
    at.text_input(key="sub_wild").set_value(str(tmp_path)).run()
    at.button(key="sub_go").click().run()
    errors = [e.value for e in at.error]
    assert errors and errors[0].startswith("'Wild data': expected a path under one of the folders"), errors
    assert str(allowed.resolve()) in errors[0] and repr(str(tmp_path)) in errors[0]
    assert (kept.stat().st_mtime_ns if kept.exists() else None) == before  # nothing made or kept
    at.text_input(key="sub_wild").set_value(str(allowed / "imgs")).run()
    at.button(key="sub_go").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    assert _metric(at, "Images") == "160"
    st.cache_resource.clear()
