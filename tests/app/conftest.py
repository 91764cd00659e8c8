"""Fixtures of the page tests."""

import pytest


@pytest.fixture(scope="module")
def home(tmp_path_factory):
    """One KDCI_HOME per test module: the built-in teacher trains once per module, and what a
    page remembers (the chosen teacher, the launch form) is that module's business."""
    path = tmp_path_factory.mktemp("kdci_home")
    mp = pytest.MonkeyPatch()
    mp.setenv("KDCI_HOME", str(path))
    yield path
    mp.undo()
