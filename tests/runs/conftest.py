"""A fresh run store per test whose built-in teacher is the session's (no retraining per test)."""

import shutil

import pytest


@pytest.fixture
def store(tmp_path, builtin, monkeypatch):
    from kdci_core.runs import RunStore
    from kdci_core.teachers import builtin_teacher_path

    home = tmp_path / "home"
    (home / "teachers").mkdir(parents=True)
    shutil.copy(builtin_teacher_path(), home / "teachers" / builtin_teacher_path().name)
    monkeypatch.setenv("KDCI_HOME", str(home))
    return RunStore(home)

