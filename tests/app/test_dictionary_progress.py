"""The Confounder dictionary page's projections say how far they are (issue 22: UMAP took 83 s
with no progress): one bar over the projection's stages, in percent that only grows, drawn from
the script's thread, gone when the projection is done, and not drawn again on a cache hit."""

from __future__ import annotations

import re
import shutil
import threading

import pytest

from tests.helpers import open_page


@pytest.fixture
def dictionary_page(builtin, tmp_path, monkeypatch):
    """The page on a fresh store with deepinv's substitution data (made by its own button once)."""
    from kdci_core.teachers import builtin_teacher_path

    (tmp_path / "teachers").mkdir()
    shutil.copy(builtin_teacher_path(), tmp_path / "teachers" / builtin_teacher_path().name)
    monkeypatch.setenv("KDCI_HOME", str(tmp_path))
    from app.shared import remember

    remember("teacher", None)  # the dashboard remembers its last teacher: an earlier test's upload
    at = open_page("../pages/dictionary.py", timeout=600)
    if any(b.key == "dict_make" for b in at.button):  # the diagnoses are server-wide: once
        at.button(key="dict_make").click().run()
    assert not at.exception and not at.error, (at.exception, at.error)
    return at


@pytest.fixture
def draws(monkeypatch):
    """Every redraw of a dashboard progress bar: (fraction, text, thread)."""
    from app.shared import ProgressBar

    seen, draw = [], ProgressBar._draw

    def recorded(self, value, text):
        seen.append((value, text, threading.current_thread()))
        draw(self, value, text)

    monkeypatch.setattr(ProgressBar, "_draw", recorded)
    return seen


@pytest.mark.parametrize("view, stages", [
    ("umap", ("UMAP: nearest neighbours of", "UMAP: fuzzy graph", "UMAP: optimising the layout", "UMAP: done")),
    ("tsne", ("t-SNE: fitting", "t-SNE: done"))])
def test_a_projection_draws_its_stages_on_one_bar(dictionary_page, draws, view, stages):
    at = dictionary_page
    at.radio(key="dict_view").set_value(view).run()
    assert not at.exception and not at.error, (at.exception, at.error)
    texts = [text for _value, text, _thread in draws]
    for stage in stages:
        assert any(t.startswith(stage) for t in texts), (stage, texts)
    percents = [int(re.search(r"\((\d+)%\)$", t).group(1)) for t in texts]
    assert percents == sorted(percents) and percents[-1] == 100  # one bar, only growing
    assert [round(value * 100) for value, _t, _th in draws] == percents
    assert len({thread for _v, _t, thread in draws}) == 1  # Streamlit draws from the script's thread
    assert not at.get("progress")  # the bar is gone with the work
    assert len(at.get("plotly_chart")) == 3
    draws.clear()
    at.radio(key="dict_view").set_value("pca").run()
    at.radio(key="dict_view").set_value(view).run()
    assert not [t for _v, t, _th in draws if t.startswith(stages[0].split(":")[0])]  # from the cache
