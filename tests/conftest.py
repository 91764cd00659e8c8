"""Shared fixtures: one throw-away KDCI_HOME per test session (the built-in teacher trains once)."""

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
SHARED = REPO.parent / "shared"
FASHION = SHARED / "data" / "fashion-mnist"


@pytest.fixture(scope="session", autouse=True)
def kdci_home(tmp_path_factory):
    home = tmp_path_factory.mktemp("kdci_home")
    old = os.environ.get("KDCI_HOME")
    os.environ["KDCI_HOME"] = str(home)
    yield home
    if old is None:
        os.environ.pop("KDCI_HOME", None)
    else:
        os.environ["KDCI_HOME"] = old


@pytest.fixture(scope="session")
def builtin(kdci_home):
    from kdci_core.teachers import builtin_teacher

    return builtin_teacher()


def tiny_config(**overrides):
    """A distillation config that finishes in seconds on a CPU."""
    from kdci_core.config import DistillConfig

    method = overrides.get("method", "deepinv")
    params = ({"g_steps": 5, "synth_every": 5, "synth_batch": 32} if method == "deepinv"
              else {"pool_size": 600, "n_select": 200})
    base = dict(epochs=2, steps_per_epoch=5, batch_size=32, method_params=params)
    base.update(overrides)
    return DistillConfig(**base)
