"""One progress bar over a long action's stages: a fixed total, ``done`` only growing, nested
stages scaled into their share, skipped stages counted, nothing past the total."""

from __future__ import annotations

import threading

import pytest

from kdci_core.diagnostics.stages import Relay, Stages


def test_stages_scale_skip_and_clamp():
    calls = []
    s = Stages(lambda *a: calls.append(a), 1 + 10 + 2 + 1)
    s.start("load")
    inner = s.inner("fit", 10)
    for done in (0, 50, 25, 100):  # a stage that goes back is not shown going back
        inner(done, 100)
    inner(100, 100, "fit: its own words")
    inner(100, 100, "nested")
    s.skip(2)  # a planned stage with nothing to do
    s.start("write")
    s.start("one stage too many")  # never past the total
    s.finish("done")
    assert [c[:2] for c in calls] == [(0, 14), (1, 14), (6, 14), (6, 14), (11, 14),
                                      (11, 14), (11, 14), (13, 14), (14, 14), (14, 14)]
    assert calls[5][2] == "fit: its own words" and calls[1][2] == "fit"
    assert calls[6][2] == "fit › nested"  # a nested action's words under the stage's


def test_without_a_callback_nothing_is_called():
    s = Stages(None, 3)
    assert s.inner("fit", 2) is None  # callers pass progress=None on, costing nothing
    s.start("x")
    s.finish("y")
    assert s.done == 3


def test_a_silent_stage_says_its_seconds_and_relays_reports_from_the_callers_thread():
    """``during``: a call that reports nothing (t-SNE's fit, UMAP's first compile) still moves
    the bar's words; reports made in its thread reach the callback from the caller's thread."""
    calls, ticked, relayed = [], threading.Event(), threading.Event()

    def progress(done, total, desc):
        calls.append((done, total, desc, threading.current_thread()))
        ticked.set() if desc.startswith("load · ") else None
        relayed.set() if desc == "fit: inner words" else None

    s = Stages(progress, 10)
    s.start("load", 2)
    inner, relay = s.inner("fit", 8), Relay()

    def call():
        assert ticked.wait(60)  # the caller's thread said the stage's seconds meanwhile
        relay(4, 8, "fit: inner words")
        assert relayed.wait(60)
        return 42

    assert s.during(call, relay=relay, then=inner, every=0.01) == 42
    assert {c[3] for c in calls} == {threading.main_thread()}
    assert (6, 10, "fit: inner words") in [c[:3] for c in calls]  # 2 + 8 * 4/8
    assert [c[0] for c in calls] == sorted(c[0] for c in calls)
    with pytest.raises(ZeroDivisionError):
        s.during(lambda: 1 / 0, every=0.01)
    assert Stages(None, 1).during(lambda: threading.current_thread()) is threading.main_thread()
