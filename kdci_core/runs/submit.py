"""Creating runs of configs already validated and handing each to a worker (no torch here):
``launcher.launch`` after its validation, and ``distill --detach`` after the command line's
cached check (``cli/admit.py``), which must print the run id without importing the loop."""

from __future__ import annotations

from .backends import Backend


def submit_new(backend: Backend, configs: list[dict], names: list[str | None] | None = None) -> list[str]:
    """Create one queued run per validated config (``DistillConfig.to_dict()``) in the backend's
    store, start its worker, and return the run ids in order."""
    ids = []
    for config, name in zip(configs, names or [None] * len(configs)):
        run = backend.store.create(config, name=name)
        backend.submit(run)
        ids.append(run.run_id)
    return ids
