"""Backends start workers: ``local`` (one detached process per run, the default) and ``ray`` (a
detached actor per run on a Ray cluster). Both implement :class:`Backend`."""

from __future__ import annotations

from ...common.errors import InputError
from ..store import RunStore
from .base import Backend
from .local import LocalBackend, default_concurrency

BACKENDS = ("local", "ray")

__all__ = ["BACKENDS", "Backend", "LocalBackend", "default_concurrency", "get_backend"]


def get_backend(name: str = "local", store: RunStore | None = None, *, ray_address: str | None = None,
                max_concurrent: int | None = None) -> Backend:
    store = store or RunStore()
    if name == "local":
        return LocalBackend(store, max_concurrent)
    if name == "ray":
        from .ray import RayBackend  # imports ray (seconds) only when asked for
        return RayBackend(store, address=ray_address)
    raise InputError(f"backend: expected one of {', '.join(BACKENDS)}, found {name!r}")
