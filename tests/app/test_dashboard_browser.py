"""The run dashboard in a real browser (issue 22, items 2 and 4): grouping keeps runs of two
teachers apart, and a student that collapsed onto one class is flagged in the table and in its
detail view. The page logic has AppTests (test_run_features.py); this drives the same runs
through Chromium and a real ``streamlit run``."""

from __future__ import annotations

import os

import pytest

from kdci_core.runs import RunStore
from tests.app.browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, serve
from tests.app.test_run_features import SHA, _cfg, _finished

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"Debian's chromium not found at {CHROMIUM} (.ci/run installs it)")


def _rows(grid) -> list[str]:
    """The rows of a data grid as text (its accessible table), once it has any."""
    grid.locator("table tr").first.wait_for(state="attached", timeout=60_000)
    return [r.text_content(timeout=10_000) or "" for r in grid.locator("table tr").all()][1:]


def test_groups_keep_two_teachers_apart_and_a_collapsed_run_is_flagged(tmp_path):
    store = RunStore(tmp_path)
    fashion = _cfg(dataset="fashion-mnist", teacher=f"{tmp_path}/uploads/{SHA}/fmnist.pt", teacher_arch="lenet5")
    for seed in (0, 1):  # same method and setting, two teachers (and datasets)
        _finished(store, _cfg(seed=seed), 50.0, counts=[36] * 10)
        _finished(store, {**fashion, "seed": seed}, 10.0, sha=SHA,
                  counts=[0] * 6 + [2000] + [0] * 3 if seed == 0 else [200] * 10)
    bad = next(r.run_id for r in store.list() if r.config()["dataset"] == "fashion-mnist"
               and r.config()["seed"] == 0)
    with playwright.sync_playwright() as p, serve(tmp_path) as url:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1600, "height": 1300})
        try:
            page.goto(f"{url}/runs")
            page.get_by_role("heading", name="Runs").wait_for(timeout=120_000)
            table = page.locator("[data-testid='stDataFrame']").filter(has_text="collapsed").first
            flagged = [r for r in _rows(table) if "collapsed" in r]
            assert len(flagged) == 1 and bad in flagged[0] and "Shirt" in flagged[0]

            page.get_by_text("Group runs", exact=True).click()
            groups = page.locator("[data-testid='stDataFrame']").filter(has_text="statuses").first
            rows = _rows(groups)
            assert len(rows) == 2, rows  # never one group of both teachers
            assert sum("fashion-mnist" in r and "fmnist.pt" in r for r in rows) == 1
            assert sum("digits" in r and "builtin" in r for r in rows) == 1
            page.screenshot(path=str(ARTIFACTS / "dashboard-groups.png"), full_page=True)

            page.goto(f"{url}/runs?run={bad}")
            page.get_by_text("collapsed: predicts Shirt for 100%").first.wait_for(timeout=120_000)
            page.get_by_role("tab", name="Predictions").click()
            page.get_by_text("Predicted classes on the 2,000 test images").first.wait_for(timeout=60_000)
            assert page.locator("[data-testid='stException']").count() == 0
            page.screenshot(path=str(ARTIFACTS / "dashboard-collapsed.png"), full_page=True)
        finally:
            page.close()
            browser.close()
