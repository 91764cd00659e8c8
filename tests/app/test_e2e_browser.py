"""From diagnosis to a deployed student, as a user does it, in Debian's Chromium against a real
`streamlit run`: upload a teacher, diagnose DeepInv, take the recommended K from the dictionary
page to a launch of KDCI on and off over 2 seeds, refresh the browser mid-run (the teacher is
still the uploaded one, the selection holds, the runs move), cancel one run with one click in
the run table, compare only comparable pairs (a run with another teacher is kept apart, with the
reason), open a run's detail view and export its student to ONNX.

Screenshots and the seconds of each step go to test-artifacts/ (``e2e-*.png``, ``e2e-timings.json``).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import pytest

from tests.app.browser_support import (ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, make_substitution_data, open_page, serve,
                                      upload)

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"Debian's chromium not found at {CHROMIUM} (.ci/run installs it)")

ROW_PX = 35  # Streamlit's data grid: header and rows 35 px high


class Steps:
    """Seconds per step of the flow, written next to the screenshots."""

    def __init__(self):
        self.times, self.t = {}, time.time()

    def done(self, name: str, page=None) -> None:
        now = time.time()
        self.times[name] = round(now - self.t, 1)
        self.t = now
        if page is not None:
            page.wait_for_timeout(800)
            page.screenshot(path=str(ARTIFACTS / f"e2e-{name}.png"), full_page=True)
        (ARTIFACTS / "e2e-timings.json").write_text(json.dumps(self.times, indent=1))


def _no_exception(page) -> None:
    assert page.locator("[data-testid='stException']").count() == 0


def _run_grid(page):
    """The run table (the data grid whose header has the ✓ selection column)."""
    grid = page.locator("[data-testid='stDataFrame']").filter(has_text="✓").first
    grid.wait_for(timeout=60_000)
    return grid


def _tick(page, run_id: str) -> None:
    """Tick the ✓ cell of ``run_id``'s row until the dashboard's kept selection is that run alone.

    The grid is a canvas (its DOM copy gives the row), and the live refresh redraws it every 2 s:
    a click that lands while the data changes belongs to the table as it was, and is lost, as it
    would be for a user, who clicks again. So: click, wait for the selection or for the page to
    settle without it, and click again."""
    from app.shared import remembered
    from app.run_table import PICKED

    def where():  # look the row up until the grid holds still long enough to be measured
        try:
            grid = _run_grid(page)
            grid.scroll_into_view_if_needed(timeout=5_000)
            rows = [r.inner_text(timeout=5_000) for r in grid.locator("table tr").all()]
            box = grid.bounding_box(timeout=5_000)
        except playwright.Error:  # redrawn under us ("not attached to the DOM"): look again
            return None
        row = next((i for i, text in enumerate(rows) if run_id in text), None)  # 0: the header
        return (box, row) if box is not None and row is not None else None

    def settled_without():  # the selection is not the run and no rerun is under way to make it so
        return remembered(PICKED) != [run_id] and page.locator("[data-testid='stStatusWidget']").count() == 0

    for _ in range(5):
        box, row = _wait(where, 60, f"{run_id}'s row in the run table", page)
        page.mouse.click(box["x"] + 38, box["y"] + ROW_PX * row + ROW_PX // 2)
        clicked = time.time()
        while time.time() - clicked < 60 and remembered(PICKED) != [run_id]:
            if time.time() - clicked > 5 and settled_without():
                time.sleep(2.0)
                if settled_without():
                    break  # the click was lost
            time.sleep(1.0)
        picked = remembered(PICKED)
        if picked == [run_id]:
            page.get_by_text("1 selected", exact=True).wait_for(timeout=60_000)
            return
        if picked:  # a click went to another row (the rows moved under it): start again
            page.get_by_role("button", name="Clear selection").click()
            _wait(lambda: not remembered(PICKED), 60, "the selection cleared", page)
    raise AssertionError(f"five clicks did not select {run_id} alone (selection: {remembered(PICKED)})")


def _wait(predicate, timeout: float, what: str, page=None):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.5)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}" + (f" at {page.url}" if page else ""))


@pytest.fixture
def home(tmp_path, builtin):
    from kdci_core.teachers import builtin_teacher_path

    home = tmp_path / "home"
    (home / "teachers").mkdir(parents=True)
    shutil.copy(builtin_teacher_path(), home / "teachers" / builtin_teacher_path().name)
    return home


def test_from_diagnosis_to_an_exported_student(home, tmp_path, monkeypatch):
    import torch

    from kdci_core.teachers import train_teacher

    ARTIFACTS.mkdir(exist_ok=True)
    monkeypatch.setenv("KDCI_HOME", str(home))
    teacher = tmp_path / "my digits teacher.safetensors"  # not the built-in one: its own hash
    train_teacher("digits", "lenet5", epochs=3, out=teacher, device=torch.device("cpu"), seed=7)
    steps = Steps()
    with serve(home) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1400, "height": 1300})
        try:
            onnx_file = _flow(page, url, home, tmp_path, teacher, steps)
        except BaseException:
            page.screenshot(path=str(ARTIFACTS / "e2e-failed.png"), full_page=True)
            raise
        finally:
            browser.close()

    import onnx

    onnx.checker.check_model(onnx.load(str(onnx_file)))
    assert set(steps.times) == {"open", "upload", "diagnose", "dictionary", "launch", "refresh", "cancel",
                                "finish", "compare", "export"}


def _flow(page, url, home, tmp_path, teacher, steps):
    from kdci_core.distill import DistillConfig
    from kdci_core.runs import RunStore, run_inline

    page.goto(url)
    page.get_by_text("Test accuracy").wait_for(timeout=180_000)
    steps.done("open")

    upload(page, url, teacher)
    page.get_by_text("valid lenet5 checkpoint").wait_for(timeout=120_000)
    steps.done("upload", page)

    make_substitution_data(page, url)
    steps.done("diagnose", page)

    open_page(page, url, "Confounder dictionary")
    rec = page.get_by_text("Recommended K =").first
    rec.wait_for(timeout=300_000)
    k = int(rec.inner_text().split("Recommended K =")[1].split()[0].strip("*"))
    steps.done("dictionary", page)
    page.get_by_role("button", name=f"Launch deepinv with the recommended K = {k}").click()
    page.get_by_role("heading", name="Runs").wait_for(timeout=60_000)
    assert page.get_by_label("K values").input_value() == str(k)
    for label, value in (("Seeds", "2"), ("Epochs", "6"), ("Steps per epoch", "60"),
                         ("Runs at once (local)", "1")):  # one after another: some still queued
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(500)
    page.get_by_text("lenet5 from the Teacher page").first.wait_for(timeout=30_000)  # not the built-in
    page.get_by_role("button", name="Launch 4 runs").click()
    store = RunStore(home)
    ids = _wait(lambda: [r["run_id"] for r in store.rows()] if len(store.rows()) == 4 else None,
                90, "4 runs in the store")
    assert {store.get(i).config()["k"] for i in ids if store.get(i).config()["kdci"]} == {k}
    assert {store.get(i).config()["teacher"] for i in ids} == {store.get(ids[0]).config()["teacher"]}
    steps.done("launch", page)

    running = _wait(lambda: [i for i in ids if store.get(i).progress().get("step", 0) > 0], 240,
                    "a run to take steps")
    before = {i: store.get(i).progress().get("step", 0) for i in ids}
    page.reload()  # mid-run: a new browser session
    page.get_by_role("heading", name="Runs").wait_for(timeout=60_000)
    page.get_by_text("4 selected", exact=True).wait_for(timeout=60_000)  # the launched runs, still selected
    # the launch form (folded now) still launches with the uploaded teacher, and the table says so
    _wait(lambda: page.get_by_text("lenet5 from the Teacher page").count() > 0, 30, "the teacher caption")
    assert page.get_by_text("the built-in").count() == 0
    page.wait_for_function("t => document.body.innerHTML.includes(t)", arg=f"{Path(store.get(ids[0]).config()['teacher']).name} (",
                       timeout=30_000)
    _wait(lambda: any(store.get(i).progress().get("step", 0) > before[i] for i in ids), 120, "the runs to move")
    steps.done("refresh", page)

    page.get_by_role("button", name="Clear selection").click()
    _wait(lambda: page.get_by_text("0 selected", exact=True).count() > 0, 30, "the selection cleared", page)
    # the run to cancel: one still waiting its turn if any (it cannot finish under the click)
    status = {i: store.get(i).status()["status"] for i in ids}
    victim = next((i for i in ids if status[i] == "queued"), None) or next(
        (i for i in ids if status[i] == "running"), running[0])
    _tick(page, victim)
    page.get_by_role("button", name="Cancel (1)").click()  # one click (a second only if a redraw lost it)
    try:
        _wait(lambda: store.get(victim).status()["status"] == "cancelled", 60, f"{victim} cancelled")
    except AssertionError:
        page.get_by_role("button", name="Cancel (1)").click(timeout=10_000)
        _wait(lambda: store.get(victim).status()["status"] == "cancelled", 60, f"{victim} cancelled")
    steps.done("cancel", page)

    others = [i for i in ids if i != victim]
    _wait(lambda: all(store.get(i).status()["status"] == "finished" for i in others), 600,
          "the other runs to finish")
    steps.done("finish")

    # a run alike in every setting but the teacher: the built-in one
    alike = store.get(next(i for i in others if not store.get(i).config()["kdci"])).config()
    apart = run_inline(DistillConfig.from_dict({**alike, "teacher": "builtin", "teacher_arch": None}),
                       store=store).run_id
    page.goto(f"{url}/compare?runs={','.join([*others, apart])}")
    page.get_by_text("KDCI gain").first.wait_for(timeout=180_000)
    page.get_by_text(f"run {apart}").first.wait_for(timeout=60_000)
    note = page.get_by_text(f"run {apart}").first.inner_text()
    assert "teacher" in note and "not paired" in note, note
    _no_exception(page)
    steps.done("compare", page)

    finished = next(i for i in others if store.get(i).config()["kdci"])
    page.goto(f"{url}/runs?run={finished}")
    page.get_by_text(f"Run {finished}").first.wait_for(timeout=60_000)
    page.get_by_role("tab", name="Export").click()
    page.locator("[data-testid='stRadio']").filter(has_text="torchscript").get_by_text("onnx", exact=True).click()
    page.get_by_role("button", name="Export the student").click()
    button = page.get_by_role("button", name="Download student.onnx", exact=True)
    button.wait_for(timeout=180_000)
    with page.expect_download() as dl:
        button.click()
    onnx_file = tmp_path / "student.onnx"
    dl.value.save_as(onnx_file)
    steps.done("export", page)
    _no_exception(page)
    return onnx_file
