"""The folders that paths typed into the dashboard may point into.

A dashboard visitor is not the operator: without this rule anyone reaching the page could make
the server read any file it can (``/etc``, another user's home) through a data-root or weights
field. The pages call :func:`check_allowed` on every path field; the command line does not (it
is the operator's own shell).

The operator lists the folders in ``KDCI_ALLOWED_ROOTS`` (``os.pathsep``-separated) and/or
``allowed_roots = [...]`` in ``$KDCI_HOME/settings.toml``. A configured list replaces the
defaults (:func:`default_roots`); ``$KDCI_HOME`` is always allowed, since uploads and runs live
there.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError
from .paths import kdci_home
from .settings import SETTINGS, read_settings, settings_path

ENV = "KDCI_ALLOWED_ROOTS"
#: where the engine itself looks for system-installed datasets (Debian's dataset-* packages)
SYSTEM_DATASETS = Path("/usr/share/datasets")


def repo_root() -> Path:
    """The folder holding ``kdci_core/`` (the repository, in an editable install)."""
    return Path(__file__).resolve().parents[2]


def sklearn_data_home() -> Path:
    """scikit-learn's data home (``$SCIKIT_LEARN_DATA``, else ``~/scikit_learn_data``), without
    creating it as ``sklearn.datasets.get_data_home`` would."""
    return Path(os.environ.get("SCIKIT_LEARN_DATA") or "~/scikit_learn_data").expanduser()


def default_roots() -> list[Path]:
    """$KDCI_HOME, the project's sibling ``../shared``, the repository's ``data/``, scikit-learn's
    data home and the system dataset folder: where this project's data lives, nothing else."""
    repo = repo_root()
    return [kdci_home(), repo.parent / "shared", repo / "data", sklearn_data_home(), SYSTEM_DATASETS]


def _settings_roots() -> list[Path]:
    """``allowed_roots`` of ``$KDCI_HOME/settings.toml`` (relative entries: relative to it)."""
    path = settings_path()
    roots = read_settings().get("allowed_roots", [])
    if not isinstance(roots, list) or not all(isinstance(r, str) for r in roots):
        raise InputError(f"{path}: expected allowed_roots = [\"FOLDER\", ...] (a list of strings), "
                         f"found {roots!r}")
    return [path.parent / Path(r).expanduser() for r in roots if r.strip()]


def configured_roots() -> list[Path]:
    """The operator's list: ``$KDCI_ALLOWED_ROOTS`` then settings.toml's (empty: none set)."""
    env = [Path(r).expanduser() for r in os.environ.get(ENV, "").split(os.pathsep) if r.strip()]
    return env + _settings_roots()


def allowed_roots() -> list[Path]:
    """The allowed folders, resolved, without duplicates: $KDCI_HOME plus the configured list, or
    the defaults when none is configured."""
    configured = configured_roots()
    roots = [kdci_home(), *configured] if configured else default_roots()
    out: list[Path] = []
    for root in roots:
        resolved = _resolve(root, "allowed folder")
        if resolved not in out:
            out.append(resolved)
    return out


def _resolve(path, field: str) -> Path:
    try:
        return Path(path).expanduser().resolve()
    except (OSError, RuntimeError, ValueError) as exc:  # a symlink loop, a NUL byte
        raise InputError(f"{field}: expected a path, found {str(path)!r} ({exc})") from None


def check_allowed(path, field: str) -> Path:
    """``path`` resolved, if it lies under an allowed folder; else an InputError naming ``field``,
    the allowed folders and the path found (and where it leads, when that differs)."""
    text = str(path).strip()
    resolved = _resolve(text, field)
    roots = allowed_roots()
    if any(resolved.is_relative_to(root) for root in roots):
        return resolved
    leads = "" if str(resolved) == text else f" (which resolves to {resolved})"
    raise InputError(f"{field}: expected a path under one of the folders this dashboard allows "
                     f"({', '.join(map(str, roots))}), found {text!r}{leads}. The operator sets them "
                     f"with {ENV} or allowed_roots in $KDCI_HOME/{SETTINGS}")
