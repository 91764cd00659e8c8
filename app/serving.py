"""The dashboard serves nobody but this machine unless its operator said otherwise on purpose.

It has no login (README: "Serving the dashboard to others"). ``app/.streamlit/config.toml``
binds it to 127.0.0.1 wherever ``streamlit run .../app/main.py`` starts, since Streamlit reads
a config file beside the main script. Should that file not be read (a Streamlit without
script-level config files, a launcher that does not name the main script, the file removed),
Streamlit would listen on every interface; :func:`refuse_if_exposed` turns that into a refusal
to serve the pages. A non-loopback address is served only when a command-line flag or a
``STREAMLIT_SERVER_ADDRESS`` variable set it: a choice made for this one start, not a file
inherited from elsewhere (``~/.streamlit``, the working directory).
"""

from __future__ import annotations

import ipaddress
import sys

import streamlit as st
from streamlit import config

#: ``config.get_where_defined`` of an option set by a flag or an environment variable (Streamlit's
#: ``_DEFINED_BY_FLAG`` and ``_DEFINED_BY_ENV_VAR``; tests/app/test_serving.py checks they match)
EXPLICIT = ("command-line argument or environment variable", "environment variable")


def is_private(address: str | None) -> bool:
    """True for a loopback address (127.0.0.0/8, ::1, localhost) or a Unix socket; unset means
    every interface, and a host name may resolve to anything."""
    text = (address or "").strip()
    if text.startswith("unix://") or text.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(text.strip("[]")).is_loopback
    except ValueError:
        return False


def refusal(address: str | None, where: str) -> str | None:
    """Why the dashboard must not serve on ``address`` (set in ``where``), or None when it may."""
    if is_private(address) or where in EXPLICIT:
        return None
    bind = (f"address {address!r} (from {where})" if address
            else "every network interface (no server.address set)")
    return (f"KDCI Studio refuses to serve on {bind}: it has no login. Start it with `streamlit run "
            f"app/main.py` (app/.streamlit/config.toml binds it to 127.0.0.1), or pass --server.address "
            f"explicitly, behind authentication (README: Serving the dashboard to others).")


def served_over_http() -> bool:
    """A browser session of a real server (AppTest and bare ``python`` runs have no request)."""
    return bool(st.context.headers)


def refuse_if_exposed() -> None:
    """Stop the page with one error (and one line on the server's stderr) when the server
    listens where :func:`refusal` says it must not."""
    why = refusal(config.get_option("server.address"), config.get_where_defined("server.address"))
    if why and served_over_http():
        print(why, file=sys.stderr, flush=True)
        st.error(why)
        st.stop()
