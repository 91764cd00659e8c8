"""What the browser tests share: a real `streamlit run` server of their own, and the steps a
user takes on every page (navigate, upload a teacher)."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from tests.helpers import REPO

CHROMIUM = "/usr/bin/chromium"
ARTIFACTS = REPO / "test-artifacts"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def streamlit_server(kdci_home, *, cwd=REPO, script="app/main.py", flags=(), env=None):
    """``streamlit run SCRIPT`` started in ``cwd`` on a free port (headless, plus ``flags``),
    waited on until healthy; yields ``(process, url)`` and always stops it, also when the test
    fails inside. ``env`` adds to (or, with None values, removes from) the environment."""
    port = free_port()
    ARTIFACTS.mkdir(exist_ok=True)
    environ = {**os.environ, "KDCI_HOME": str(kdci_home), **(env or {})}
    # the server's output goes to a file: a pipe nobody reads fills up and stalls the server
    log = open(ARTIFACTS / f"streamlit-{port}.log", "wb")  # noqa: SIM115 (closed below)
    proc = subprocess.Popen(
        [sys.executable, "-m", "streamlit", "run", str(script), "--server.port", str(port),
         "--server.headless", "true", *flags],
        cwd=cwd, env={k: v for k, v in environ.items() if v is not None},
        stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.time() + 90
        while time.time() < deadline and proc.poll() is None:
            try:
                if urllib.request.urlopen(url + "/_stcore/health", timeout=2).read() == b"ok":
                    break
            except OSError:
                time.sleep(0.5)
        else:
            pytest.fail(f"streamlit server did not become healthy in 90 s (exit status {proc.poll()}):\n"
                        + Path(log.name).read_text(errors="replace")[-2000:])
        yield proc, url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@contextlib.contextmanager
def serve(kdci_home):
    """The dashboard's own `streamlit run app/main.py` from the repository root, on 127.0.0.1;
    yields its URL."""
    with streamlit_server(kdci_home, flags=("--server.address", "127.0.0.1")) as (_, url):
        yield url


def upload(page, server, path):
    page.goto(server)
    page.get_by_text("Upload a checkpoint").click()
    page.locator("input[type='file']").first.set_input_files(str(path))  # the checkpoint's


def open_page(page, server, title):
    """Go to a page through the sidebar's navigation link (keeps the session's teacher choice)."""
    page.locator("[data-testid='stSidebarNav']").get_by_text(title, exact=True).click()
    page.get_by_role("heading", name=title).wait_for(timeout=60_000)


def wait_plots(page, n: int, timeout: int = 60_000) -> int:
    """Wait until the page shows at least ``n`` plotly charts (a state, not a delay); their count."""
    page.wait_for_function("n => document.querySelectorAll('.js-plotly-plot').length >= n",
                           arg=n, timeout=timeout)
    return page.locator(".js-plotly-plot").count()


def make_substitution_data(page, server, rounds: int = 2, timeout: int = 300_000) -> None:
    """On the Substitution data page: ``rounds`` synthesis rounds, Generate, wait for the FID."""
    open_page(page, server, "Substitution data")
    box = page.get_by_label("Synthesis rounds")
    box.fill(str(rounds))
    box.press("Enter")
    page.wait_for_timeout(500)
    page.get_by_role("button", name="Generate substitution data").click()
    page.get_by_text("FID vs test split").first.wait_for(timeout=timeout)
