"""What ``kdci distill`` knows of the engine before importing it: its options' choices and
defaults, the fields' ranges (``distill.config.RANGES``), and the outcomes of configs already
validated (``admit.py``), cached in ``$KDCI_HOME/cache/distill.json``.

Why: the parser's choices come from the registries (methods, ablations, presets...) and a
config's validation imports torch (~5 s on a 2-core CPU), yet ``distill --detach`` must print
its run id at once. The first call builds the facts from the engine itself, so they cannot drift
from it, and writes them; later calls read them back without importing torch.

The entry is keyed by the content of every ``.py`` file of the package (~8 ms for ~140 files)
and by the installed torch, torchvision and timm (their ``__init__`` file's size and time): an
edit or an upgrade rebuilds it. A missing, corrupt or stale entry, or an unwritable home, is
never an error: it only costs the import (``methods.py``'s cache works the same way).
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from .. import __version__
from ..common.errors import StorageError
from ..common.jsonio import atomic_write_text
from ..common.paths import kdci_home

#: bump when the layout of the entry changes
SCHEMA = 1
PACKAGE = Path(__file__).resolve().parents[1]
#: libraries whose version can change what a validation says (architectures, timm configs)
LIBRARIES = ("torch", "torchvision", "timm")
#: validated configs kept (the oldest go first)
MEMO_ENTRIES = 256


def cache_path() -> Path:
    return kdci_home() / "cache" / "distill.json"


def _library_id(name: str) -> str:
    try:
        spec = importlib.util.find_spec(name)
        st = os.stat(spec.origin)
        return f"{name}:{st.st_size}:{st.st_mtime_ns}"
    except (ImportError, AttributeError, TypeError, ValueError, OSError):
        return f"{name}:absent"


#: (the files' names, sizes and times) -> their fingerprint, for this process (one hash per call)
_HASHED: dict = {}


def fingerprint(root: Path = PACKAGE) -> str:
    """sha256 over the schema, the version, every package file's name and content, the libraries."""
    files = sorted(root.rglob("*.py"))
    stats = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in files)
    if stats in _HASHED:
        return _HASHED[stats]
    h = hashlib.sha256(f"kdci-distill-facts/{SCHEMA}/{__version__}\n".encode())
    for path in files:
        h.update(path.relative_to(root).as_posix().encode() + b"\0")
        h.update(hashlib.sha256(path.read_bytes()).digest())
    for name in LIBRARIES:
        h.update(_library_id(name).encode() + b"\0")
    _HASHED.clear()
    _HASHED[stats] = h.hexdigest()
    return _HASHED[stats]


def build_facts() -> dict:
    """The choices, defaults and ranges of ``distill``'s options, from the engine (imports torch)."""
    from ..common.device import DEVICE_CHOICES
    from ..data import dataset_names
    from ..data.augment import AUGMENTATIONS
    from ..distill import ABLATION_CHOICES, FUSION_CHOICES, DistillConfig
    from ..distill.config import RANGES
    from ..distill.corrections import CORRECTIONS
    from ..distill.memory import USABLE
    from ..distill.presets import PRESETS
    from ..kdci import ATTENTION_INPUTS
    from ..methods import METHODS

    return {"choices": {"method": METHODS.names(), "preset": list(PRESETS), "device": list(DEVICE_CHOICES),
                        "ablation": list(ABLATION_CHOICES), "fusion": list(FUSION_CHOICES),
                        "attn_input": list(ATTENTION_INPUTS), "correction": list(CORRECTIONS),
                        "augment": list(AUGMENTATIONS), "dataset": list(dataset_names())},
            "defaults": DistillConfig().to_dict(), "ranges": {k: list(v) for k, v in RANGES.items()},
            "usable": USABLE}


class Facts:
    """The cache entry in memory: ``facts`` (see :func:`build_facts`) and ``memo`` (admit.py)."""

    def __init__(self, facts: dict, memo: dict | None = None, key: str | None = None):
        self.facts, self.memo, self.key = facts, dict(memo or {}), key

    @property
    def choices(self) -> dict:
        return self.facts["choices"]

    @property
    def defaults(self) -> dict:
        return self.facts["defaults"]

    def remember(self, key: str, entry: dict) -> bool:
        """Keep one validated config's outcome and write the cache; False if it cannot be written."""
        self.memo.pop(key, None)
        self.memo[key] = entry
        while len(self.memo) > MEMO_ENTRIES:
            self.memo.pop(next(iter(self.memo)))
        return write(self)


def read() -> Facts | None:
    """The cached entry when its key matches the package and libraries now; None otherwise."""
    try:
        entry = json.loads(cache_path().read_text(encoding="utf-8"))
        key = fingerprint()
        if entry.get("schema") != SCHEMA or entry.get("key") != key:
            return None
        facts, memo = entry["facts"], entry.get("memo") or {}
        if not (isinstance(facts, dict) and isinstance(memo, dict) and isinstance(facts.get("choices"), dict)
                and isinstance(facts.get("defaults"), dict) and isinstance(facts.get("ranges"), dict)):
            return None
        return Facts(facts, memo, key)
    except Exception:  # noqa: BLE001 (a cache: any failure means "build it")
        return None


def write(facts: Facts) -> bool:
    entry = {"schema": SCHEMA, "version": __version__, "key": facts.key or fingerprint(),
             "facts": facts.facts, "memo": facts.memo}
    try:
        path = cache_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        atomic_write_text(path, json.dumps(entry))
        return True
    except (OSError, StorageError, ValueError, TypeError):
        return False


def load() -> Facts:
    """The facts: from the cache when current, else built from the engine (then cached)."""
    cached = read()
    if cached is not None:
        return cached
    fresh = Facts(build_facts(), key=fingerprint())
    write(fresh)
    return fresh
