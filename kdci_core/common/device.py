"""Device choice, seeding and peak-memory measurement: CUDA when present, CPU otherwise."""

from __future__ import annotations

import os
import random
import resource
import sys

import numpy as np
import torch

from .errors import InputError

DEVICE_CHOICES = ("auto", "cpu", "cuda")


def configure_cpu_threads() -> int:
    """Intra-op CPU threads: ``KDCI_NUM_THREADS`` (or ``OMP_NUM_THREADS``) when set, else half the
    cores, at most 4. Runs share cores (parallel runs, the dashboard, tests): on a 2-core VM two
    threads were 1.4-2x faster when idle but 1.2-4.4x slower beside one busy process, and
    erratic beside two, 4x faster to 27x slower (benchmarks/RESULTS.md, cpu_threads.py)."""
    wanted = os.environ.get("KDCI_NUM_THREADS") or os.environ.get("OMP_NUM_THREADS")
    try:
        n = max(1, int(wanted)) if wanted else max(1, min(4, (os.cpu_count() or 2) // 2))
    except ValueError:
        raise InputError(f"KDCI_NUM_THREADS: expected a positive integer, found {wanted!r}") from None
    if torch.get_num_threads() != n:
        torch.set_num_threads(n)
    return n


def resolve_device(name: str = "auto") -> torch.device:
    """'auto' picks CUDA when available; asking for 'cuda' without one is an InputError.
    Every engine entry point resolves its device here, so the CPU thread policy is set here too."""
    configure_cpu_threads()
    if name not in DEVICE_CHOICES and not str(name).startswith("cuda:"):
        raise InputError(f"--device: expected one of {', '.join(DEVICE_CHOICES)}, found {name!r}")
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if str(name).startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device: {name!r} requested but no CUDA device is available on this machine")
    return torch.device(name)


def seed_everything(seed: int) -> torch.Generator:
    """Seed Python, NumPy and torch; returns a torch.Generator for code that wants its own stream."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def peak_memory_mb(device: torch.device) -> float:
    """CUDA: peak allocated tensor memory; CPU: the process's peak resident set size."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / 2**20 if sys.platform == "darwin" else rss / 2**10


def autocast(device: torch.device, enabled: bool = True):
    """Mixed precision (bfloat16) on CUDA only; a no-op context on CPU."""
    device = torch.device(device)
    return torch.autocast(device_type=device.type, dtype=torch.bfloat16,
                          enabled=enabled and device.type == "cuda")


_CONTROLLER = None


def single_thread_blas():
    """Limit BLAS/OpenMP to one thread while clustering.

    The problem is small (N in the hundreds or thousands) and the CPU is shared with the
    training loop: multi-threaded OpenMP/BLAS ran up to 10x slower under contention on a
    2-core machine, single-threaded stays at a few ms. The controller is cached because
    building one (``threadpool_limits``) scans the loaded libraries, ~9 ms each call.
    """
    global _CONTROLLER
    if _CONTROLLER is None:
        import sklearn.cluster  # noqa: F401  (load its OpenMP runtime before scanning)
        import sklearn.decomposition  # noqa: F401
        from threadpoolctl import ThreadpoolController
        _CONTROLLER = ThreadpoolController()
    return _CONTROLLER.limit(limits=1)
