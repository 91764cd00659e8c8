"""What every layer shares: the input-error type, the registry, progress callbacks, ``$KDCI_HOME``,
atomic JSON files (all light: no torch), and ``common.device`` (device, seeding, threads, memory).
Imports nothing else of the engine."""

from .errors import InputError, as_int, check_range
from .jsonio import atomic_write_json, read_json
from .paths import kdci_home
from .progress import Progress, TqdmProgress, report
from .registry import Registry

__all__ = ["InputError", "Progress", "Registry", "TqdmProgress", "as_int", "atomic_write_json",
           "check_range", "kdci_home", "read_json", "report"]
