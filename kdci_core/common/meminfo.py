"""This machine's available memory and whether a GPU can be present, read without torch.

Why here: the memory check of a run (``distill.memory``) and the command line's check of a
detached run (``cli/admit.py``, which must not import torch) read the same number the same way.
"""

from __future__ import annotations

from pathlib import Path

#: device nodes without which no CUDA (NVIDIA), ROCm (AMD) or WSL GPU is visible to a process
GPU_NODES = ("/dev/nvidiactl", "/dev/kfd", "/dev/dxg")


def available_bytes() -> int | None:
    """``MemAvailable`` of ``/proc/meminfo`` in bytes; None where it cannot be read."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def gpu_possible() -> bool:
    """False only when no GPU device node exists, so ``torch.cuda.is_available()`` is False."""
    return any(Path(node).exists() for node in GPU_NODES)
