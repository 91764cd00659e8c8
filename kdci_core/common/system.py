"""System metrics per epoch, part of each epoch's record (as W&B and MLflow record them): the
process's CPU use, its resident memory and, on CUDA, the memory PyTorch holds.

Read once per epoch from counters the host keeps anyway (the process's CPU times, ``/proc``'s
resident set, the CUDA caching allocator's statistics): nothing per step, no device sync. The
standard library only (no psutil): on a system without ``/proc`` the resident memory is the
process's peak (``getrusage``) and says so in its key.
"""

from __future__ import annotations

import os
import sys
import time

#: the keys of an epoch record's ``system`` (their titles: ``figures.runs.Y_AXES``)
SYSTEM_METRICS = ("cpu_percent", "rss_mb", "rss_peak_mb", "cuda_allocated_mb", "cuda_peak_mb")
_MB = 1024 * 1024


def cpu_seconds() -> float:
    """User plus system CPU time of this process so far."""
    t = os.times()
    return t.user + t.system


def rss_mb() -> tuple[str, float] | None:
    """(key, MB): the resident set now (``/proc/self/statm``), else the peak (``getrusage``)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return "rss_mb", pages * os.sysconf("SC_PAGE_SIZE") / _MB
    except (OSError, ValueError, IndexError):
        pass
    try:
        import resource

        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
        return "rss_peak_mb", peak / (_MB if sys.platform == "darwin" else 1024)
    except (ImportError, OSError):
        return None


def cuda_memory_mb(device) -> dict:
    """The caching allocator's allocated and peak memory on ``device`` (host-side counters: no
    sync); {} off CUDA."""
    if getattr(device, "type", str(device).split(":")[0]) != "cuda":
        return {}
    import torch

    return {"cuda_allocated_mb": torch.cuda.memory_allocated(device) / _MB,
            "cuda_peak_mb": torch.cuda.max_memory_allocated(device) / _MB}


class SystemSampler:
    """The system metrics since the previous sample: CPU % is over that span (CPU seconds used /
    wall seconds elapsed, x 100; from the sampler's creation for the first), memory is now."""

    def __init__(self, device=None):
        self.device, self.cpu0, self.wall0 = device, cpu_seconds(), time.monotonic()

    def sample(self) -> dict[str, float]:
        out = {}
        cpu, wall = cpu_seconds(), time.monotonic()
        if wall > self.wall0:
            out["cpu_percent"] = 100.0 * (cpu - self.cpu0) / (wall - self.wall0)
        self.cpu0, self.wall0 = cpu, wall
        rss = rss_mb()
        if rss is not None:
            out[rss[0]] = rss[1]
        return out | cuda_memory_mb(self.device)
