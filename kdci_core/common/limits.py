"""How much memory one user file may ask for: the budget every reader checks a file's declared
sizes against *before* inflating anything.

A small file can declare a huge content (a zip member of 8 GiB compressed into 8 MB, a gzip of
zeros, a pickle opcode that announces 4 GiB of bytes); the readers compare what a file declares
with this budget first, so such a file is refused with one line instead of taking the server's
memory. The operator raises it with ``KDCI_MAX_INFLATED_MB`` (wins) or ``max_inflated_mb = N`` in
``$KDCI_HOME/settings.toml``.
"""

from __future__ import annotations

import os

from .errors import InputError
from .settings import SETTINGS, read_settings

ENV = "KDCI_MAX_INFLATED_MB"
SETTING = "max_inflated_mb"
#: 1 GiB: the largest file this project reads (CIFAR-100's train batch, 150 MB; a ResNet-50's
#: weights, 100 MB) fits many times over, and a refused file never costs more than this
DEFAULT_MB = 1024
#: a compressed zip member (a torch.save checkpoint stores its tensors uncompressed) that inflates
#: more than this many times, to more than BOMB_FLOOR bytes, is a zip bomb, not weights
BOMB_RATIO = 100
BOMB_FLOOR = 16 << 20
HOW_TO_RAISE = f"raise it with {ENV}=MB or {SETTING} = MB in $KDCI_HOME/{SETTINGS}"


def _megabytes(value, where: str) -> int:
    try:
        mb = int(str(value).strip()) if not isinstance(value, bool) else -1
    except ValueError:
        mb = -1
    if mb <= 0:
        raise InputError(f"{where}: expected a whole number of megabytes > 0, found {value!r}")
    return mb


def max_inflated_bytes() -> int:
    """The budget in bytes: ``$KDCI_MAX_INFLATED_MB``, else settings.toml's ``max_inflated_mb``,
    else :data:`DEFAULT_MB` (MiB)."""
    if os.environ.get(ENV, "").strip():
        return _megabytes(os.environ[ENV], ENV) << 20
    value = read_settings().get(SETTING)
    return (DEFAULT_MB if value is None else _megabytes(value, f"{SETTINGS} {SETTING}")) << 20


def mib(n: int) -> str:
    return f"{n / 2**20:,.0f} MiB" if n >= 2**20 else f"{n:,} bytes"


def check_inflated(source, declared: int, what: str, budget: int | None = None) -> None:
    """Refuse ``source`` when ``declared`` bytes (what the file says its content needs, e.g.
    "its tensors") exceed the budget: one line naming the file, both sizes and the setting."""
    budget = max_inflated_bytes() if budget is None else budget
    if declared > budget:
        size = mib if mib(declared) != mib(budget) else (lambda n: f"{n:,} bytes")
        raise InputError(f"{source}: refused: {what} would take {size(declared)} in memory, more "
                         f"than the {size(budget)} allowed for one file ({HOW_TO_RAISE})")


def check_ratio(source, name: str, compressed: int, inflated: int) -> None:
    """Refuse a compressed member that inflates absurdly (a zip bomb): more than
    :data:`BOMB_RATIO` times, to more than :data:`BOMB_FLOOR` bytes."""
    if inflated > BOMB_FLOOR and inflated > BOMB_RATIO * max(compressed, 1):
        raise InputError(f"{source}: refused: member {name} inflates {compressed:,} compressed bytes "
                         f"to {mib(inflated)} (over {BOMB_RATIO}x: a zip bomb, not weights)")
