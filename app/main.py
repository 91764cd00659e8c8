"""KDCI Studio dashboard entry point: ``streamlit run app/main.py``.

Sets the page up, renders the controls shared by every page (device) and hands over to
``st.navigation`` over the page scripts in ``pages/`` at the repository root. Its Streamlit
settings (127.0.0.1 only, 2 GiB uploads, XSRF protection) are ``app/.streamlit/config.toml``,
which Streamlit reads beside this script wherever the server is started; ``app/serving.py``
refuses to serve on another address that no flag or variable chose.

The page scripts are deliberately not in ``app/pages/``: Streamlit treats a ``pages/`` folder
beside the main script as a legacy multipage app until ``st.navigation`` has run once in the
server process, so the first visitor after a (re)start who came by a deep link (``/runs?run=ID``)
got the bare page script, without this navigation, layout or sidebar.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from app.serving import refuse_if_exposed
from app.navigation import open_default_page_by_name
from app.shared import DEVICE_KEY, remember, remembered
from kdci_core.common.device import DEVICE_CHOICES

PAGES = Path(__file__).resolve().parents[1] / "pages"
#: the favicon, shipped here: Streamlit serves an image file itself, whereas a ":material/...:"
#: favicon is fetched from a font CDN (fonts.gstatic.com), which fails offline. The sidebar's
#: ":material/...:" page icons use the Material Symbols font bundled with Streamlit: no network.
ICON = Path(__file__).resolve().parent / "static" / "icon.png"

st.set_page_config(page_title="KDCI Studio", page_icon=ICON, layout="wide",
                   initial_sidebar_state="expanded")
refuse_if_exposed()  # private unless the operator chose an address for this start

TEACHER = st.Page(PAGES / "teacher.py", title="Teacher", icon=":material/school:", default=True)
open_default_page_by_name(TEACHER)  # `/teacher` opens it too, not a "Page not found" modal
page = st.navigation([
    TEACHER,
    st.Page(PAGES / "substitution.py", title="Substitution data", icon=":material/auto_awesome:"),
    st.Page(PAGES / "dictionary.py", title="Confounder dictionary", icon=":material/hub:"),
    st.Page(PAGES / "runs.py", title="Runs", icon=":material/play_circle:"),
    st.Page(PAGES / "compare.py", title="Compare runs", icon=":material/compare_arrows:"),
])

with st.sidebar:
    st.markdown("### KDCI Studio")
    st.caption("Data-free knowledge distillation with causal intervention")
    if DEVICE_KEY not in st.session_state:  # the last choice of this dashboard
        st.session_state[DEVICE_KEY] = remembered("device", "auto")
    st.selectbox("Device", DEVICE_CHOICES, key=DEVICE_KEY,
                 on_change=lambda: remember("device", st.session_state[DEVICE_KEY]),
                 help="auto: CUDA when available, CPU otherwise (kept across refreshes and restarts)")

page.run()
