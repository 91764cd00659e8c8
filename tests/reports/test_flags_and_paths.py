"""What the comparison and the report say beyond the numbers: a collapsed student flagged with
its prediction histogram, one folder spelled two ways not taken for a difference, and a wide
table that scrolls inside its box instead of widening the page."""

from __future__ import annotations

import json
import os

import pytest

from kdci_core.reports import compare_runs, config_tables, export_report, predictions_table, sweep_fields
from kdci_core.reports.export import _CSS
from kdci_core.runs import RunStore
from tests.helpers import tiny_config


def _finished(store, acc, counts=None, **cfg) -> str:
    run = store.create(tiny_config(**cfg).to_dict())
    result = {"student_accuracy": acc, "history": []}
    if counts is not None:
        result |= {"prediction_counts": counts,
                   "class_names": ["T-shirt", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt",
                                   "Sneaker", "Bag", "Ankle boot"][:len(counts)]}
    run.write_result(result)
    run.set_status("running")
    run.set_status("finished")
    return run.run_id


def test_one_folder_spelled_two_ways_is_no_difference(tmp_path):
    """The Compare page warned that runs differ in ``data_root``: one stored the resolved path
    (the pages), the other the path as typed through a symlink (the command line). Resolved
    when compared, they pair, the note is gone, and the value is a shared setting."""
    data = tmp_path / "data"
    data.mkdir()
    (tmp_path / "link").symlink_to(data)
    store = RunStore(tmp_path / "home")
    on = _finished(store, 60.0, kdci=True, data_root=str(data))
    off = _finished(store, 55.0, kdci=False, data_root=str(tmp_path / "link"))
    comp = compare_runs(store, [on, off])
    assert comp.notes == [] and comp.gains["deepinv"].pairs[0].gain == pytest.approx(5.0)
    shared, per_run = config_tables(comp)
    assert {"field": "data_root", "value": str(data.resolve())} in shared
    assert all("data_root" not in row for row in per_run)
    assert "data_root" not in sweep_fields(comp)[0]
    # a real difference of folder is still one
    other = tmp_path / "other"
    other.mkdir()
    third = _finished(store, 50.0, kdci=False, data_root=str(other), seed=1)
    assert "data_root" in sweep_fields(compare_runs(store, [on, off, third]))[0]


def test_a_collapsed_student_is_flagged_in_the_comparison_and_every_report_format(tmp_path):
    """Two students ended at 10.00% predicting "Shirt" for every image and nothing said so: the
    comparison notes it, its table names the class and share, the HTML shows the histogram."""
    store = RunStore(tmp_path / "home")
    bad = _finished(store, 10.0, counts=[0] * 6 + [2000] + [0] * 3, kdci=True)
    good = _finished(store, 80.0, counts=[200] * 10, kdci=False)
    comp = compare_runs(store, [bad, good])
    assert [r.collapsed for r in comp.runs] == [True, False]
    assert any(bad in n and "collapsed: predicts Shirt for 100% of the 2,000 test images" in n
               for n in comp.notes)
    rows = {r["run"]: r for r in predictions_table(comp)}
    assert rows[bad]["collapsed"] == "yes" and rows[bad]["most predicted class"] == "Shirt"
    assert rows[bad]["its share (%)"] == "100.0" and rows[good]["collapsed"] == "no"
    html, js, md = export_report(store, [bad, good], tmp_path / "r.html", include_students=False)
    page = html.read_text()
    assert f'<p class="flag">{bad}' in page and "Students&#x27; predictions" in page
    assert page.count('class="plotly-graph-div"') == 2 + 1 + 1  # curves, gain, the histogram
    assert "| Shirt | 100.0 | yes |" in md.read_text()
    data = json.loads(js.read_text())
    assert data["comparison"]["runs"][0]["predictions"]["counts"][6] == 2000


def test_runs_without_a_histogram_have_no_predictions_table(tmp_path):
    store = RunStore(tmp_path / "home")
    ids = [_finished(store, 50.0, kdci=k) for k in (True, False)]
    comp = compare_runs(store, ids)
    assert predictions_table(comp) == [] and not any(r.collapsed for r in comp.runs)


def test_wide_tables_scroll_inside_their_box(tmp_path):
    """The per-run config table (long command lines) made the report page 2,929 px wide: every
    table sits in a box that scrolls sideways (CSS rule checked, and in Chromium, the page is no
    wider than the window)."""
    assert ".scroll{overflow-x:auto;max-width:100%}" in _CSS
    store = RunStore(tmp_path / "home")
    ids = [_finished(store, 50.0 + s, kdci=k, seed=s, method_params={"g_steps": 5, "synth_every": 5,
                                                                     "synth_batch": 32, "note": "x" * 400})
           for s in (0, 1) for k in (True, False)]
    html = export_report(store, ids, tmp_path / "wide.html", formats=("html",), include_students=False)[0]
    page = html.read_text()
    assert page.count("<table>") == page.count('<div class="scroll"><table>')
    chromium = "/usr/bin/chromium"
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    if not os.path.exists(chromium):
        pytest.skip(f"Debian's chromium not found at {chromium}")
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, args=["--no-sandbox", "--disable-gpu"])
        try:
            tab = browser.new_page(viewport={"width": 1280, "height": 800})
            tab.goto(html.as_uri())
            page_width = tab.evaluate("document.documentElement.scrollWidth")
            widest_table = tab.evaluate("Math.max(...[...document.querySelectorAll('table')].map(t => t.scrollWidth))")
        finally:
            browser.close()
    assert widest_table > 1280 and page_width <= 1280, (widest_table, page_width)
