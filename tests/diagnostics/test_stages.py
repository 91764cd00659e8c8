"""One progress bar over a long action's stages: a fixed total, ``done`` only growing, nested
stages scaled into their share, skipped stages counted, nothing past the total."""

from __future__ import annotations

from kdci_core.diagnostics.stages import Stages


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
