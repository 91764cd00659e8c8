"""Shared fixtures: one throw-away KDCI_HOME per test session (the built-in teacher trains once),
and a fresh run store per test that reuses it."""

import os

import pytest


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
