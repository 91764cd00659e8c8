"""The default page under its own name: ``/teacher`` opens the Teacher page, as ``/`` does.

Why: ``st.navigation`` gives its default page the root URL only (``StreamlitPage.url_path`` is
"" for it), so a link or a bookmark to ``/teacher`` (the name every other page has in its URL)
answered with a "Page not found" modal. Streamlit has no alias for a page, and a second entry
for the same script would show twice in the sidebar; so before the navigation is built, a
request for the default page's own name is turned into a request for the default page. The
browser's address then shows the root URL, as for any visit to the default page.
"""

from __future__ import annotations

from streamlit.navigation.page import StreamlitPage
from streamlit.runtime.scriptrunner import get_script_run_ctx


def open_default_page_by_name(default: StreamlitPage) -> bool:
    """Make this run's request for ``default``'s own name (``teacher`` for ``pages/teacher.py``)
    a request for the default page; True when it did. Call before ``st.navigation``."""
    ctx = get_script_run_ctx()
    manager = getattr(ctx, "pages_manager", None)
    name = default._url_path  # the name it would have if it were not the default (no public getter)
    if manager is None or manager.intended_page_script_hash or manager.intended_page_name != name:
        return False
    manager.set_script_intent("", "")  # no page asked: st.navigation opens its default
    return True
