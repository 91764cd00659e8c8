"""One walk over a user's folder, used by every folder reader (wild pools, the folder dataset).

A folder typed into the dashboard is checked against the allowed folders, but what lies *inside*
it is the user's: ``os.walk(followlinks=True)`` (and torchvision's ``make_dataset``, which uses
it) looped forever on a folder holding two symlinks to itself, and followed a link nested inside
an allowed folder to anywhere on the server. The rule here, for every entry met (file or
folder, a symlink or not):

- its path is **resolved** (symlinks followed) before anything is decided or read;
- it is kept when the resolved path lies under the **resolved folder the walk was given**
  (``within``) **or under one of** :func:`~kdci_core.common.allowed_paths.allowed_roots`;
  otherwise it is skipped and counted (a symlink that leads out);
- a folder or file whose resolved path was already met in this walk is skipped and counted (a
  symlink loop, or a second link to the same place): the walk always ends, and each image is
  listed once;
- hidden entries (a name starting with ``.``) are left out, only regular files are listed (a
  FIFO named ``x.png`` would block its reader), entries are visited in sorted name order, and
  the files come back as resolved paths, so what is read later is what was checked.

Everything skipped is reported in one warning per load: how many, of which kind, an example.
"""

from __future__ import annotations

import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from ..common.allowed_paths import ENV, SETTINGS, allowed_roots
from ..common.errors import InputError


def _under(path: Path, roots) -> bool:
    return any(path.is_relative_to(r) for r in roots)


@dataclass
class Walker:
    """Walks folders under the rule of this module; ``within``: the folder the user gave (links
    may lead anywhere under it). Counts what it skipped over all its walks, for :meth:`warn`."""

    within: Path
    outside: list[tuple[Path, Path]] = field(default_factory=list)  # (entry, where it leads)
    repeats: list[Path] = field(default_factory=list)
    unreadable: list[Path] = field(default_factory=list)
    _allowed: list[Path] | None = None

    def __post_init__(self):
        self.within = Path(os.path.realpath(self.within))

    def _kept(self, entry: Path, real: Path) -> bool:
        """The containment rule; the allowed folders are read only when a link leads out."""
        if real.is_relative_to(self.within):
            return True
        if self._allowed is None:
            self._allowed = allowed_roots()
        if _under(real, self._allowed):
            return True
        self.outside.append((entry, real))
        return False

    def _entries(self, real_dir: Path, shown_dir: Path):
        """(shown path, resolved path, is a folder, is a regular file) of each non-hidden entry,
        sorted by name; only a symlink costs a system call (the others' types come with the
        listing)."""
        try:
            with os.scandir(real_dir) as it:
                entries = sorted((e for e in it if not e.name.startswith(".")), key=lambda e: e.name)
        except OSError:
            self.unreadable.append(shown_dir)
            return
        for e in entries:
            shown = shown_dir / e.name
            try:
                if e.is_symlink():
                    real = Path(os.path.realpath(e.path))
                    if not self._kept(shown, real):
                        continue
                    mode = os.stat(real).st_mode
                    is_dir, is_file = stat.S_ISDIR(mode), stat.S_ISREG(mode)
                else:
                    real = real_dir / e.name
                    is_dir, is_file = e.is_dir(follow_symlinks=False), e.is_file(follow_symlinks=False)
            except OSError:  # a dangling or looping link, a file gone meanwhile
                self.unreadable.append(shown)
                continue
            yield shown, real, is_dir, is_file

    def subfolders(self, folder) -> list[str]:
        """The names of ``folder``'s kept sub-folders (hidden ones left out), sorted."""
        folder = Path(folder)
        real = Path(os.path.realpath(folder))
        if not self._kept(folder, real):
            return []
        return [shown.name for shown, _, is_dir, _ in self._entries(real, folder) if is_dir]

    def files(self, folder, accept: Callable[[str], bool]) -> list[Path]:
        """The resolved paths of the regular files under ``folder`` whose name ``accept`` takes,
        depth first in sorted order, each once."""
        folder = Path(folder)
        start = Path(os.path.realpath(folder))
        if not self._kept(folder, start):
            return []
        seen, found = {start}, []
        stack = [(folder, start)]
        while stack:
            shown_dir, real_dir = stack.pop()
            subdirs = []
            for shown, real, is_dir, is_file in self._entries(real_dir, shown_dir):
                if not (is_dir or (is_file and accept(shown.name))):
                    continue
                if real in seen:
                    self.repeats.append(shown)
                    continue
                seen.add(real)
                if is_dir:
                    subdirs.append((shown, real))
                else:
                    found.append(real)
            stack.extend(reversed(subdirs))  # the first sub-folder is walked next
        return found

    def warn(self, what: str) -> None:
        """One warning naming what was skipped, by kind, with an example of each."""
        parts = []
        if self.outside:
            entry, real = self.outside[0]
            parts.append(f"{len(self.outside)} symlink(s) leading outside {self.within} and the "
                         f"allowed folders (e.g. {entry} -> {real}; the operator allows a folder "
                         f"with {ENV} or allowed_roots in $KDCI_HOME/{SETTINGS})")
        if self.repeats:
            parts.append(f"{len(self.repeats)} folder(s) or file(s) reached again through a "
                         f"symlink (a loop or a second link; e.g. {self.repeats[0]})")
        if self.unreadable:
            parts.append(f"{len(self.unreadable)} entr(y/ies) that could not be read (a dangling "
                         f"or looping link, no permission; e.g. {self.unreadable[0]})")
        if parts:
            warnings.warn(f"{what}: skipped " + "; ".join(parts), stacklevel=3)


def contained(path, within, what: str) -> Path:
    """The resolved ``path`` of a file a reader opens by name inside ``within`` (an IDX or CIFAR
    file in its data folder), under the same rule as a walk: a symlink may lead anywhere under
    ``within`` or an allowed folder, nowhere else; else an InputError (nothing is read)."""
    walker = Walker(within)
    real = Path(os.path.realpath(path))
    if walker._kept(Path(path), real):
        return real
    raise InputError(f"{what}: expected {path} to be a file inside {walker.within} or an allowed "
                     f"folder, found a symlink to {real}; copy the file there, or the operator "
                     f"allows its folder with {ENV} or allowed_roots in $KDCI_HOME/{SETTINGS}")


def walk_files(folder, accept: Callable[[str], bool], what: str) -> list[Path]:
    """:meth:`Walker.files` of one folder, with its warning (``what`` names the load)."""
    walker = Walker(folder)
    found = walker.files(folder, accept)
    walker.warn(what)
    return found
