"""The public home of :class:`InputError` (``kdci_core.errors.InputError``, ACCEPTANCE section 1).

It is defined in :mod:`kdci_core.common.errors`; this module keeps the documented import path.
"""

from .common.errors import InputError, StorageError, check_range

__all__ = ["InputError", "StorageError", "check_range"]
