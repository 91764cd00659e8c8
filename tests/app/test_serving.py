"""The dashboard is private wherever it is started: a real `streamlit run` from the repository
root, from app/, and from another folder (also one whose own and global Streamlit configs ask for
every interface, the 200 MB upload limit and no XSRF protection) listens on loopback only, takes
uploads up to 2 GiB and refuses a cross-site upload. Before app/.streamlit/config.toml, the
app/ and other-folder starts listened on 0.0.0.0 and [::] with the 200 MB limit.

And app/main.py refuses to serve on a non-loopback address that no flag or variable chose."""

from __future__ import annotations

import shutil
import socket
import subprocess

import pytest
from streamlit import config as st_config
from streamlit.testing.v1 import AppTest

from app import serving
from app.shared import DEVICE_KEY
from tests.app.browser_support import streamlit_server
from tests.helpers import MAIN, REPO

SS = shutil.which("ss")
GIB = 1024**3
#: what a config file in the working directory or ~/.streamlit could say
HOSTILE = ('[server]\naddress = "0.0.0.0"\nmaxUploadSize = 200\nenableXsrfProtection = false\n'
           'enableCORS = false\n')
#: the variables that would override app/.streamlit/config.toml on purpose: not set here
UNSET = {f"STREAMLIT_SERVER_{name}": None
         for name in ("ADDRESS", "MAX_UPLOAD_SIZE", "ENABLE_XSRF_PROTECTION", "ENABLE_CORS")}


def listening(pid: int) -> list[str]:
    """The local addresses (port left off) of the TCP sockets process ``pid`` listens on."""
    out = subprocess.run([SS, "-ltnpH"], capture_output=True, text=True, check=True).stdout
    return [line.split()[3].rsplit(":", 1)[0] for line in out.splitlines() if f"pid={pid}," in line]


def exchange(url: str, request: bytes, *, half_close: bool = True) -> bytes:
    """Send one raw HTTP request, close our side (``half_close``; else keep it open, so the server
    answers before it sees our end: no race between its answer and its close on our EOF), and
    return the whole answer (b"" when the server only closed the connection)."""
    host, port = url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=60) as s:
        s.sendall(request)
        if half_close:
            s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    return answer


def declaring(url: str, size: int, *, half_close: bool = True) -> bytes:
    """The answer to a request that declares a ``size``-byte body and sends none: Tornado refuses
    at once (400) what exceeds server.maxUploadSize, and waits for the body of what does not."""
    return exchange(url, f"PUT /_stcore/health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                         f"Content-Length: {size}\r\n\r\n".encode(), half_close=half_close)


def start(case: str, tmp_path):
    """(working directory, script, extra environment) of each way of starting the dashboard."""
    if case == "repository root":
        return REPO, "app/main.py", {}
    if case == "app folder":
        return REPO / "app", "main.py", {}
    if case == "another folder":
        return tmp_path, REPO / "app" / "main.py", {}
    home, work = tmp_path / "home", tmp_path / "work"
    for folder in (home, work):
        (folder / ".streamlit").mkdir(parents=True)
        (folder / ".streamlit" / "config.toml").write_text(HOSTILE)
    return work, REPO / "app" / "main.py", {"HOME": str(home)}


@pytest.mark.skipif(SS is None, reason="iproute2's ss is not installed")
@pytest.mark.parametrize("case", ["repository root", "app folder", "another folder",
                                  "a folder with hostile configs"])
def test_private_wherever_it_starts(case, tmp_path, kdci_home):
    cwd, script, env = start(case, tmp_path)
    with streamlit_server(kdci_home, cwd=cwd, script=script, env={**UNSET, **env}) as (proc, url):
        bound = listening(proc.pid)
        assert bound and set(bound) <= {"127.0.0.1", "[::1]"}, f"{case}: listening on {bound}"
        # over 2 GiB: refused as soon as the headers are read (our side stays open until it answers)
        assert declaring(url, 3 * GIB, half_close=False).startswith(b"HTTP/1.1 400")
        assert declaring(url, GIB) == b"", "a 1 GiB upload refused: the 200 MB default limit"
        answer = exchange(url, b"PUT /_stcore/upload_file/s/f HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                               b"Content-Length: 2\r\nConnection: close\r\n\r\nab")
        assert answer.startswith(b"HTTP/1.1 403"), answer[:80]  # no XSRF token: forbidden


def test_streamlit_names_flags_and_variables_as_we_expect():
    assert set(serving.EXPLICIT) == {st_config._DEFINED_BY_FLAG, st_config._DEFINED_BY_ENV_VAR}


@pytest.mark.parametrize("address, where, refused", [
    ("127.0.0.1", "/repo/app/.streamlit/config.toml", False),
    ("::1", "/repo/app/.streamlit/config.toml", False),
    ("localhost", "<default>", False),
    ("unix:///run/kdci.sock", "<default>", False),
    (None, "<default>", True),  # Streamlit's default: every interface
    ("0.0.0.0", "/home/u/.streamlit/config.toml", True),
    ("kdci.example.org", "/work/.streamlit/config.toml", True),
    ("0.0.0.0", serving.EXPLICIT[0], False),  # --server.address 0.0.0.0
    ("192.0.2.7", serving.EXPLICIT[1], False),  # STREAMLIT_SERVER_ADDRESS
])
def test_the_refusal_rule(address, where, refused):
    why = serving.refusal(address, where)
    assert (why is not None) == refused
    if refused:
        assert "--server.address" in why and (where in why or "every network interface" in why)


@pytest.fixture
def address_from_a_file(monkeypatch):
    """server.address = 0.0.0.0 as if read from a config file, and a browser session."""
    old = (st_config.get_option("server.address"), st_config.get_where_defined("server.address"))
    st_config.set_option("server.address", "0.0.0.0", where_defined="/elsewhere/.streamlit/config.toml")
    monkeypatch.setattr(serving, "served_over_http", lambda: True)
    yield
    st_config.set_option("server.address", old[0], where_defined=old[1])


def test_main_refuses_to_serve_on_an_address_nobody_chose(builtin, address_from_a_file, capsys):
    at = AppTest.from_file(MAIN, default_timeout=120).run()
    assert not at.exception, at.exception
    assert [e.value for e in at.error] and "refuses to serve" in at.error[0].value
    assert "/elsewhere/.streamlit/config.toml" in at.error[0].value
    assert not [w for w in at.selectbox if w.key == DEVICE_KEY] and not at.title  # nothing else
    assert "refuses to serve" in capsys.readouterr().err
    st_config.set_option("server.address", "0.0.0.0", where_defined=serving.EXPLICIT[0])
    at = AppTest.from_file(MAIN, default_timeout=120).run()  # --server.address 0.0.0.0: served
    assert not at.error and at.selectbox(key=DEVICE_KEY)
