"""What several test modules share: where the repository and ../shared are, and a run config
that finishes in seconds on a CPU."""

from __future__ import annotations

import os
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FASHION = SHARED / "data" / "fashion-mnist"
MAIN = str(REPO / "app" / "main.py")


def tiny_config(**overrides):
    """A distillation config that finishes in seconds on a CPU."""
    from kdci_core.distill import DistillConfig

    method = overrides.get("method", "deepinv")
    params = ({"g_steps": 5, "synth_every": 5, "synth_batch": 32} if method == "deepinv"
              else {"pool_size": 600, "n_select": 200})
    base = dict(epochs=2, steps_per_epoch=5, batch_size=32, method_params=params)
    base.update(overrides)
    return DistillConfig(**base)


FAST_DEEPINV = {"g_steps": 3, "synth_every": 2, "synth_batch": 40}
#: ~4 s per run on a CPU (DeepInversion at its quick defaults, 3 x 35 steps): the students leave
#: chance (32.8-38.1% on 10 classes, seeds 0-1, KDCI on and off; 3 x 20 steps of FAST_DEEPINV
#: ended at 10-12%, chance) and differ, so the reports compare students that learned something.
RUN_OPTS = dict(epochs=3, steps_per_epoch=35, method_params={})
#: the least a shared run's student must reach (chance is 10%)
LEFT_CHANCE = 20.0
_MADE: dict = {}


def finished_runs() -> tuple:
    """Four tiny deepinv runs (KDCI on/off x seeds 0, 1) in their own store, made once per session
    (the reports tests and the Compare page's use the same ones). Needs the built-in teacher."""
    from kdci_core.runs import RunStore, run_inline

    if not _MADE:
        home = Path(os.environ["KDCI_HOME"]) / "compare-store"
        store = RunStore(home)
        ids = {}
        for seed in (0, 1):
            for kdci in (True, False):
                cfg = tiny_config(kdci=kdci, seed=seed, **RUN_OPTS)
                result = run_inline(cfg, store=store).to_json()
                assert result["student_accuracy"] > LEFT_CHANCE, (
                    f"a shared run's student did not leave chance: {result['student_accuracy']:.1f}%")
                ids[(kdci, seed)] = result["run_id"]
        _MADE.update(home=home, ids=ids)
    return RunStore(_MADE["home"]), dict(_MADE["ids"])


def open_page(path: str, *, timeout: float = 120):
    """An AppTest of the dashboard switched to ``path`` (e.g. ``"../pages/runs.py"``), rendered
    once without an exception."""
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(MAIN, default_timeout=timeout)
    at.run()
    at.switch_page(path)
    at.run()
    assert not at.exception, at.exception
    return at
