"""Every page opens from its URL in a real browser: ``/teacher`` (the default page's own name)
opened a "Page not found" modal, since Streamlit gives the default page the root URL only."""

from __future__ import annotations

import os

import pytest

from tests.app.browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, serve

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"Debian's chromium not found at {CHROMIUM} (.ci/run installs it)")

#: URL path -> the page's heading
PAGES = {"": "Teacher", "teacher": "Teacher", "runs": "Runs", "compare": "Compare runs"}


def test_teacher_and_root_open_the_teacher_page(builtin, kdci_home):
    ARTIFACTS.mkdir(exist_ok=True)
    with serve(kdci_home) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            for path, heading in PAGES.items():
                page = browser.new_page(viewport={"width": 1300, "height": 900})
                page.goto(f"{url}/{path}")
                page.get_by_role("heading", name=heading, exact=True).wait_for(timeout=120_000)
                # the sidebar's navigation has rendered: a "Page not found" modal comes with it
                page.locator("[data-testid='stSidebarNav']").get_by_text("Runs", exact=True).wait_for(
                    timeout=30_000)
                if path == "teacher":
                    page.screenshot(path=str(ARTIFACTS / "teacher-url.png"))
                assert page.get_by_text("Page not found").count() == 0, path
                assert page.locator("[data-testid='stException']").count() == 0, path
                page.close()
        finally:
            browser.close()
