"""One progress bar over a long action made of stages (a projection's fit, a report's sections).

Why: a dashboard bar that restarts at 0 for every stage says nothing about how much is left.
:class:`Stages` keeps one ``done``/``total`` for the whole action, which only grows; a stage
that has its own progress (UMAP's epochs, a nested projection) is scaled into its share.
"""

from __future__ import annotations

from ..common.progress import Progress, report


class Stages:
    """Report ``(done, total, desc)`` over stages of known sizes (in units of work).

    ``start(desc, size)`` announces the next stage (reports the units done so far);
    ``inner(desc, size)`` is a progress callback for a stage that reports its own
    ``(done, total[, desc])``, mapped into that stage's ``size`` units; ``skip(size)`` passes
    over a planned stage with nothing to do; ``finish(desc)`` reports the total.
    ``done`` never decreases and never passes ``total``."""

    def __init__(self, progress: Progress, total: int):
        self.progress = progress
        self.total = max(1, int(total))
        self.done = 0       # units reported so far
        self._end = 0       # where the stage in progress ends

    def _report(self, done: int, desc: str) -> None:
        self.done = min(self.total, max(self.done, int(done)))
        report(self.progress, self.done, self.total, desc)

    def start(self, desc: str, size: int = 1) -> None:
        """Begin a stage of ``size`` units: whatever the previous one left undone counts as done."""
        self._report(self._end, desc)
        self._end = min(self.total, self._end + max(0, int(size)))

    def inner(self, desc: str, size: int = 1):
        """A callback for a stage with its own progress, scaled into its ``size`` units."""
        start = self._end  # reported by its first call: the stage may not have begun yet
        self._end = min(self.total, start + max(0, int(size)))
        span = self._end - start

        def callback(done: int, total: int, inner_desc: str = "") -> None:
            frac = min(1.0, max(0.0, done / total)) if total else 1.0
            said = desc if not inner_desc else inner_desc if inner_desc.startswith(desc) \
                else f"{desc} › {inner_desc}"  # a nested action's words, under this stage's
            self._report(start + int(span * frac), said)

        return callback if self.progress is not None else None

    def skip(self, size: int) -> None:
        """A planned stage that turned out to have nothing to do: its units count as done."""
        self._end = min(self.total, self._end + max(0, int(size)))

    def finish(self, desc: str) -> None:
        self._end = self.total
        self._report(self.total, desc)
