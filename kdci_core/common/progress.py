"""Progress reporting shared by the command line (tqdm) and the dashboard (st.progress).

A progress callback is any ``callable(done: int, total: int, desc: str) -> None``; engine
functions accept ``progress=None`` and call :func:`report` so a missing callback costs nothing.
"""

from __future__ import annotations

from typing import Callable, Optional

Progress = Optional[Callable[[int, int, str], None]]


def report(progress: Progress, done: int, total: int, desc: str) -> None:
    if progress is not None:
        progress(done, total, desc)


class TqdmProgress:
    """One tqdm bar per description (teacher training, synthesis, distillation...).

    Bars are drawn only on a terminal (tqdm's ``disable=None``); piped output gets the CLI's
    per-epoch lines instead of cursor-control noise."""

    def __init__(self, enabled: bool = True):
        self.enabled = enabled
        self._bars: dict = {}

    def __call__(self, done: int, total: int, desc: str) -> None:
        if not self.enabled:
            return
        from tqdm.auto import tqdm

        bar = self._bars.get(desc)
        if bar is None or bar.total != total:
            if bar is not None:
                bar.close()
            bar = self._bars[desc] = tqdm(total=total, desc=desc, leave=False,
                                                   dynamic_ncols=True, disable=None)
        bar.update(done - bar.n)
        if done >= total:
            bar.close()
            self._bars.pop(desc, None)

    def close(self) -> None:
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()
