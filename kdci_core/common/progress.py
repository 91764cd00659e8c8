"""Progress reporting shared by the command line (tqdm) and the dashboard (st.progress).

A progress callback is any ``callable(done: int, total: int, desc: str) -> None``; engine
functions accept ``progress=None`` and call :func:`report` so a missing callback costs nothing.
``desc`` names the action first, then its stage or details after ``:`` or `` (``:
``"teacher training (epoch 2/5, ...)"``, ``"UMAP: optimising the layout"``; one action keeps
one bar while its stage words change.
"""

from __future__ import annotations

import re
from typing import Callable, Optional

Progress = Optional[Callable[[int, int, str], None]]

#: where an action's name ends in its description: its stage or details follow
_ACTION_END = re.compile(r":|\s\(")
#: the longest description a bar shows (the rest of the line is the bar itself)
DESC_CHARS = 60


def report(progress: Progress, done: int, total: int, desc: str) -> None:
    if progress is not None:
        progress(done, total, desc)


def action_of(desc: str) -> str:
    """The action a description names: ``"UMAP: optimising the layout"`` -> ``"UMAP"``."""
    return _ACTION_END.split(desc or "", maxsplit=1)[0].strip()


def short(desc: str, chars: int = DESC_CHARS) -> str:
    return desc if len(desc) <= chars else desc[:chars - 1] + "…"


class TqdmProgress:
    """One tqdm bar (on stderr) per action in progress: teacher training, a synthesis round,
    the student steps, a projection's stages... An action is named by the start of its
    description (:func:`action_of`) and its total: a stage's new words redraw its bar's
    description, a new total starts a new bar, ``done >= total`` closes it, a ``done`` below
    the bar's count restarts it.

    Bars are drawn only on a terminal (tqdm's ``disable=None``); piped output gets the CLI's
    per-epoch lines instead of cursor-control noise."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bars: dict = {}
        self._said: dict = {}  # each bar's description as last set

    def __call__(self, done: int, total: int, desc: str) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        key, text = (action_of(desc), total), short(desc)
        bar = self._bars.get(key)
        if bar is None:
            bar = self._bars[key] = tqdm(total=total, desc=text, leave=False, dynamic_ncols=True,
                                         disable=None)
            self._said[key] = text
        elif self._said.get(key) != text:
            self._said[key] = text
            bar.set_description_str(text, refresh=False)
        if done < bar.n:  # the action started again (an earlier run of it never reached its total)
            bar.reset(total=total)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            self._bars.pop(key, None)
            self._said.pop(key, None)

    def write(self, text: str) -> None:
        """A line on stderr above the bars in progress (a plain print would break them)."""
        import sys

        from tqdm.auto import tqdm

        tqdm.write(text, file=sys.stderr)
        sys.stderr.flush()

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
        self._said.clear()
