"""Settings that are each valid alone but not together, checked by ``DistillConfig.resolve``
before a run exists (``--dry-run``, ``--detach``, the Runs page's launch, the worker): KDCI's K
against the samples each dictionary is built from, and the largest step against free memory."""

from __future__ import annotations

from ..common.errors import InputError
from ..models.sources import is_known
from ..teachers.builtin import BUILTIN_ARCH
from .memory import check_memory, step_estimates


def dictionary_samples(method_cls, params: dict) -> tuple[int, str, str]:
    """At most how many samples each KDCI dictionary is built from, what they are, and the
    setting that says so: a generation method's synthetic mini-batch, a sampling method's
    selection (no larger than its pool; the pool may still hold fewer images, which the run
    checks once it has them)."""
    name = method_cls.name
    if method_cls.kind == "generation":
        return params["synth_batch"], "images of each synthetic mini-batch", f"{name}.synth_batch"
    if params["pool_size"] < params["n_select"]:
        return params["pool_size"], "images of the wild pool", f"{name}.pool_size"
    return params["n_select"], "selected images", f"{name}.n_select"


def check_k(cfg, method_cls, params: dict) -> None:
    """K clusters need at least K samples: refuse a K above the dictionary's sample count."""
    if not cfg.kdci or cfg.k == "auto":
        return
    k = cfg.k if cfg.k is not None else method_cls.default_k
    n, what, setting = dictionary_samples(method_cls, params)
    if k > n:
        given = f"--k {k}" if cfg.k is not None else f"--k (the {method_cls.name} default, {k})"
        raise InputError(f"{given}: K must not exceed the {n} {what} KDCI's dictionary is built "
                         f"from ({setting} {n}); give --k {n} or less, or a larger {setting}")


def resource_steps(cfg, method_cls, params: dict | None = None) -> list[tuple[str, int, int, str]]:
    """The run's steps with their memory per image (``memory.step_estimates``); none for a
    teacher of an unknown architecture (its loading names the problem)."""
    params = method_cls.resolve_params(cfg.method_params) if params is None else params
    teacher_arch = BUILTIN_ARCH if cfg.teacher == "builtin" else cfg.teacher_arch
    return step_estimates(cfg, method_cls, params, teacher_arch) if is_known(teacher_arch) else []


def check_dependent(cfg, method_cls, *, resources: bool = True) -> None:
    """Every check across settings; ``cfg`` validated field by field already; ``resources``:
    also the memory estimate against this machine's free memory."""
    params = method_cls.resolve_params(cfg.method_params)
    check_k(cfg, method_cls, params)
    if resources:
        check_memory(cfg, resource_steps(cfg, method_cls, params))
