"""The dashboard in a real browser: Debian's Chromium driven by Playwright against a real
`streamlit run` server. Screenshots go to test-artifacts/ (CI keeps them as artefacts)."""

import os
import pickle
import shutil
import time

import pytest

from tests.app.browser_support import ARTIFACTS, CHROMIUM, CHROMIUM_ARGS, make_substitution_data
from tests.app.browser_support import open_page as _open_page
from tests.app.browser_support import serve as _serve
from tests.app.browser_support import upload as _upload
from tests.app.browser_support import wait_plots as _wait_plots
from tests.helpers import FASHION

playwright = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
pytestmark = pytest.mark.skipif(not os.path.exists(CHROMIUM),
                                reason=f"Debian's chromium not found at {CHROMIUM} (.ci/run installs it)")


@pytest.fixture(scope="module")
def server(builtin, kdci_home):
    with _serve(kdci_home) as url:
        yield url


def test_deep_link_on_a_fresh_server(builtin, kdci_home, browser):
    """The first visitor after a server (re)start arrives by a bookmarked deep link: they get
    the app's navigation, layout and sidebar, not a bare page script (Streamlit's legacy
    multipage mode for a `pages/` folder beside the main script)."""
    with _serve(kdci_home) as url:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(f"{url}/runs?run=no-such-run")
        page.get_by_role("heading", name="Runs").wait_for(timeout=120_000)
        nav = page.locator("[data-testid='stSidebarNav']")
        for title in ("Teacher", "Substitution data", "Confounder dictionary", "Compare runs"):
            nav.get_by_text(title, exact=True).wait_for(timeout=30_000)
        assert nav.get_by_text("main", exact=True).count() == 0
        page.get_by_text("KDCI Studio").first.wait_for(timeout=30_000)  # main.py's sidebar ran
        assert page.locator("[data-testid='stException']").count() == 0
        page.close()


@pytest.fixture(scope="module")
def browser():
    with playwright.sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield b
        b.close()


@pytest.fixture
def page(browser):
    ARTIFACTS.mkdir(exist_ok=True)
    pg = browser.new_page(viewport={"width": 1400, "height": 1300})
    yield pg
    pg.close()


def test_teacher_page_builtin(server, page):
    page.goto(server)
    page.get_by_text("Test accuracy").wait_for(timeout=120_000)
    page.get_by_text("valid lenet5 checkpoint").wait_for(timeout=30_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "teacher-builtin.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    assert _wait_plots(page, 2) >= 2  # per-class bars + confusion matrix
    # a reload keeps working (the teacher is cached on disk)
    page.reload()
    page.get_by_text("Test accuracy").wait_for(timeout=60_000)


class _Evil:
    def __init__(self, target):
        self.target = target

    def __reduce__(self):
        return (os.system, (f"touch {self.target}",))


def test_teacher_page_upload_valid_and_malicious(server, page, tmp_path, kdci_home):
    from kdci_core.teachers import builtin_teacher_path

    good = tmp_path / "my teacher.safetensors"
    shutil.copy(builtin_teacher_path(), good)
    _upload(page, server, good)
    page.get_by_text("valid lenet5 checkpoint").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "teacher-upload.png"), full_page=True)

    target = tmp_path / "pwned"
    evil = tmp_path / "evil.pt"
    with open(evil, "wb") as f:
        pickle.dump({"state_dict": _Evil(target)}, f)
    _upload(page, server, evil)
    page.get_by_text("refused to load").wait_for(timeout=60_000)
    page.screenshot(path=str(ARTIFACTS / "teacher-upload-refused.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0  # an st.error, no traceback
    assert not target.exists()


def _diagnose_in_browser(page, server, tag):
    make_substitution_data(page, server)
    page.get_by_text("FID extractor").first.wait_for(timeout=30_000)
    assert _wait_plots(page, 3) >= 3  # grid, proportions, rounds
    page.screenshot(path=str(ARTIFACTS / f"substitution-{tag}.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0

    _open_page(page, server, "Confounder dictionary")
    page.get_by_text("Recommended K =").first.wait_for(timeout=240_000)
    assert _wait_plots(page, 3) >= 3  # projection, P(z), K curve
    page.screenshot(path=str(ARTIFACTS / f"dictionary-{tag}.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0


def test_diagnostic_pages_builtin(server, page):
    page.goto(server)
    page.get_by_text("Test accuracy").wait_for(timeout=120_000)
    _diagnose_in_browser(page, server, "builtin")


@pytest.mark.skipif(not (FASHION / "t10k-images-idx3-ubyte.gz").exists(),
                    reason=f"real Fashion-MNIST not found at {FASHION} (../shared is absent)")
def test_diagnostic_pages_fashion_mnist(server, page, tmp_path):
    from kdci_core.teachers import train_teacher

    teacher = tmp_path / "fmnist-lenet5.safetensors"
    train_teacher("fashion-mnist", "lenet5", epochs=1, out=teacher, data_root=str(FASHION),
                  device="cpu")
    _upload(page, server, teacher)
    page.locator("[data-testid='stSelectbox']").filter(has_text="Dataset").click()
    page.get_by_role("option", name="fashion-mnist").click()
    root = page.get_by_label("Data root (optional)")
    root.fill(str(FASHION))
    root.press("Enter")
    page.get_by_text("10,000 test images").wait_for(timeout=120_000)  # scored on Fashion-MNIST
    _diagnose_in_browser(page, server, "fashion-mnist")
    caption = page.locator("[data-testid='stCaptionContainer']").filter(has_text="from the Teacher page")
    assert "fashion-mnist" in caption.first.inner_text()


_POINTS = ("Math.max(0, ...Array.from(document.querySelectorAll('.js-plotly-plot'))"
           ".flatMap(g => (g.data || []).map(t => (t.x || []).length)))")


def _wait_points(page, n: int, timeout: float = 180) -> int:
    """Wait until some plotly curve on the page has at least ``n`` points; return the count."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        got = page.evaluate(_POINTS)
        if got >= n:
            return got
        page.wait_for_timeout(500)
    raise AssertionError(f"no curve reached {n} points in {timeout} s")


def test_runs_live_refresh_compare_and_report(server, page, kdci_home, tmp_path):
    """The main flow: launch KDCI on/off from the Runs page, watch the curve move, reload, still
    there, compare the two runs, download the report and open it offline."""
    from kdci_core.runs import RunStore, wait_for

    before = {r["run_id"] for r in RunStore(kdci_home).rows()}
    page.goto(server)
    page.get_by_text("Test accuracy").wait_for(timeout=120_000)
    _open_page(page, server, "Runs")
    page.get_by_role("heading", name="Runs").wait_for(timeout=60_000)
    page.wait_for_timeout(1000)
    if not page.get_by_label("Seeds", exact=True).is_visible():  # collapsed once runs exist
        page.locator("[data-testid='stExpander'] summary").filter(has_text="Launch runs").click()
    page.get_by_label("Seeds", exact=True).wait_for(timeout=30_000)
    for label, value in (("Seeds", "1"), ("Epochs", "4"), ("Steps per epoch", "25")):
        box = page.get_by_label(label, exact=True)
        box.fill(value)
        box.press("Enter")
        page.wait_for_timeout(400)
    page.get_by_role("button", name="Launch 2 runs").click()
    deadline = time.time() + 60
    while time.time() < deadline and len({r["run_id"] for r in RunStore(kdci_home).rows()} - before) < 2:
        time.sleep(0.5)
    ids = sorted({r["run_id"] for r in RunStore(kdci_home).rows()} - before)
    assert len(ids) == 2, ids
    page.get_by_text("Monitoring").first.wait_for(timeout=60_000)
    # the live monitor redraws by itself: its curves gain points while the runs train
    first = _wait_points(page, 1)
    _wait_points(page, first + 1)
    page.screenshot(path=str(ARTIFACTS / "runs-live.png"), full_page=True)
    assert wait_for(RunStore(kdci_home), ids, timeout=240) == {i: "finished" for i in ids}
    page.reload()  # closing the tab / refreshing loses nothing
    page.get_by_role("heading", name="Runs").wait_for(timeout=60_000)
    for text in (ids[0], ids[1], "4/4"):  # the run table (a canvas grid, with a DOM copy)
        page.wait_for_function("t => document.body.innerHTML.includes(t)", arg=text, timeout=60_000)
    assert _wait_points(page, 4) >= 4
    assert page.locator("[data-testid='stException']").count() == 0

    page.goto(f"{server}/compare?runs={','.join(ids)}")
    page.get_by_text("KDCI gain").first.wait_for(timeout=120_000)
    page.wait_for_timeout(1000)
    page.screenshot(path=str(ARTIFACTS / "compare.png"), full_page=True)
    assert page.locator("[data-testid='stException']").count() == 0
    page.get_by_role("button", name="Build the report").click()
    button = page.get_by_role("button", name="Download html")
    button.wait_for(timeout=240_000)
    with page.expect_download() as dl:
        button.click()
    report = tmp_path / "report.html"
    dl.value.save_as(report)
    html = report.read_text()
    assert "<script src=" not in html and ids[0] in html
    offline = page.context.browser.new_page()
    offline.goto(report.as_uri())
    offline.locator(".js-plotly-plot").first.wait_for(timeout=60_000)
    assert _wait_plots(offline, 3) >= 3
    offline.screenshot(path=str(ARTIFACTS / "report.png"), full_page=True)
    offline.close()
