"""One status vocabulary, and a resume that goes to the backend the run ran on (not the caller's)."""

from __future__ import annotations

import pytest

import kdci_core.runs.launcher as launch_module
from kdci_core.errors import InputError
from kdci_core.runs import ACTIVE, RESUMABLE, STATUSES, TERMINAL, resume
from tests.helpers import tiny_config


def test_status_vocabulary_partitions_the_statuses():
    assert set(ACTIVE) | set(TERMINAL) == set(STATUSES) and not set(ACTIVE) & set(TERMINAL)
    assert set(RESUMABLE) < set(TERMINAL) and "finished" not in RESUMABLE


class FakeBackend:
    def __init__(self):
        self.submitted = []

    def submit(self, run, *, resume=False):
        self.submitted.append((run.run_id, resume))


@pytest.mark.parametrize("ran_on, expected", [("ray", "ray"), ("local", "local"), ("inline", "local")])
def test_resume_picks_the_runs_own_backend(store, monkeypatch, ran_on, expected):
    run = store.create(tiny_config().to_dict())
    run.set_status("failed", backend=ran_on, ray_address="10.0.0.1:6379" if ran_on == "ray" else None)
    asked, fake = {}, FakeBackend()

    def get_backend(name, store_, **options):
        asked.update(name=name, **options)
        return fake

    monkeypatch.setattr(launch_module, "get_backend", get_backend)
    resume(store, run.run_id)
    assert asked["name"] == expected and fake.submitted == [(run.run_id, True)]
    assert asked["ray_address"] == ("10.0.0.1:6379" if ran_on == "ray" else None)


def test_resume_refuses_a_run_that_is_not_resumable(store):
    run = store.create(tiny_config().to_dict())
    run.set_status("running")
    run.set_status("finished")
    with pytest.raises(InputError, match="only failed or cancelled"):
        resume(store, run.run_id, FakeBackend())
