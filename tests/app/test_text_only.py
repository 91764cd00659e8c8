"""What users type reaches the pages as text, never as Markdown: a tag written as a Markdown image
(which the browser would fetch from another site) or as emphasis, and run ids typed into a
link (``?run=``, ``?runs=``), are shown as the characters typed. AppTest sees the Markdown
source of a label or an alert, so the tests read the escapes there."""

from __future__ import annotations

import os
import re

import pytest
from streamlit.testing.v1 import AppTest

from kdci_core.runs import RunStore
from tests.app.browser_support import CHROMIUM, CHROMIUM_ARGS, serve
from tests.helpers import MAIN, finished_runs

IMAGE = "![x](http://example.invalid/x.png)"
BOLD = "**bold**"
#: how CommonMark reads a backslash before ASCII punctuation: the character itself
_ESCAPE = re.compile(r"\\([!-/:-@\[-`{-~])")


def shown(markdown: str) -> str:
    """The text a Markdown renderer shows for ``markdown`` made only of escapes and letters."""
    return _ESCAPE.sub(r"\1", markdown)


def plain(markdown: str) -> bool:
    """No unescaped Markdown punctuation (no image, link, emphasis, code, math, directive)."""
    return not re.search(r"(?<!\\)[!*_`\[\]()$:<>~]", _ESCAPE.sub("", markdown))


@pytest.mark.parametrize("text", [IMAGE, BOLD, "a_b_ $x$ :red[y] <b>&amp; `c` \\*", "line\nbreak",
                                  "www.example.invalid", "- a list", "---", "run-1-b"])
def test_as_text_shows_exactly_what_was_typed(text):
    from app.shared import as_text

    escaped = as_text(text)
    assert shown(escaped) == text.replace("\n", " ") and plain(escaped)
    assert not escaped.startswith("-") and "-1-" in as_text("run-1-b")  # "-": markup only first


def _page(path: str, **params) -> AppTest:
    at = AppTest.from_file(MAIN, default_timeout=120)
    at.switch_page(path)
    for key, value in params.items():
        at.query_params[key] = value
    at.run()
    assert not at.exception, at.exception
    return at


def _tagged_run(home):
    cfg = {"method": "deepinv", "kdci": True, "seed": 0, "epochs": 2, "steps_per_epoch": 5,
           "teacher": "builtin", "dataset": "digits", "lr": 0.01}
    run = RunStore(home).create(cfg)  # queued, no worker
    run.annotate(tags=[IMAGE, BOLD], notes=f"{BOLD} {IMAGE}")
    return run


def test_tags_and_a_linked_run_id_are_text_on_the_runs_page(tmp_path, monkeypatch):
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    run = _tagged_run(tmp_path)
    at = _page("../pages/runs.py", run=run.run_id)
    label = next(e.label for e in at.expander if e.label.startswith("Tags and notes"))
    tags = label.removeprefix("Tags and notes: ")
    assert shown(tags) == f"{IMAGE}, {BOLD}" and plain(tags), label
    assert at.text_area(key=f"detail_text_{run.run_id}").value == f"{BOLD} {IMAGE}"  # a text box
    at = _page("../pages/runs.py", run=IMAGE)  # a crafted link
    errors = [e.value for e in at.error]
    assert errors and IMAGE in shown(errors[0]) and plain(errors[0]), errors


def test_a_linked_run_id_is_text_on_the_compare_page(builtin, monkeypatch):
    store, _ = finished_runs()
    monkeypatch.setenv("KDCI_HOME", str(store.home))
    at = _page("../pages/compare.py", runs=f"{IMAGE},{BOLD}")
    left_out = [w.value.split("store): ", 1)[1] for w in at.warning if w.value.startswith("Left out")]
    assert left_out and shown(left_out[0]) == f"{IMAGE}, {BOLD}" and plain(left_out[0]), at.warning


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"Debian's chromium not found at {CHROMIUM}")
def test_a_markdown_tag_is_text_in_a_real_browser(tmp_path):
    """What the user sees: the label's text is the tags as typed, no image loaded, no bold."""
    playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    run = _tagged_run(tmp_path)
    with serve(tmp_path) as url, playwright.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            page = browser.new_page()
            page.goto(f"{url}/runs?run={run.run_id}")
            label = page.locator("[data-testid='stExpander'] summary").filter(has_text="Tags and notes")
            label.first.wait_for(timeout=120_000)
            assert f"Tags and notes: {IMAGE}, {BOLD}" in label.first.inner_text()
            # no image, no emphasis; Streamlit still makes a link of a bare URL in any text
            assert label.first.locator("img, strong, em").count() == 0
            assert page.locator("img[src*='example.invalid']").count() == 0
        finally:
            browser.close()
