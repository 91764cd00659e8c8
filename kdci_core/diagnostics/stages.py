"""One progress bar over a long action made of stages (a projection's fit, a report's sections).

Why: a dashboard bar that restarts at 0 for every stage says nothing about how much is left.
:class:`Stages` keeps one ``done``/``total`` for the whole action, which only grows; a stage
that has its own progress (UMAP's epochs, a nested projection) is scaled into its share.

A stage that reports nothing for a long time (scikit-learn's t-SNE fit, the numba compile of a
process's first UMAP: tens of seconds) runs through :meth:`Stages.during`: in a helper thread,
while the caller's thread says the seconds it has taken every ``TICK_S``, so the bar is never
frozen; the progress callback is only ever called from the caller's thread (Streamlit draws
from the script's thread only), reports made inside the call go through a :class:`Relay`.
"""

from __future__ import annotations

import threading
import time

from ..common.progress import Progress, report

#: how often a stage run by :meth:`Stages.during` is said again (its seconds so far)
TICK_S = 0.5


class Relay:
    """A progress callback for code running in another thread: it keeps the latest report,
    which :meth:`Stages.during` passes on from the caller's thread."""

    def __init__(self):
        self._latest = None
        self._lock = threading.Lock()

    def __call__(self, done: int, total: int, desc: str = "") -> None:
        with self._lock:
            self._latest = (done, total, desc)

    def take(self):
        """The report made since the last take (None: none)."""
        with self._lock:
            latest, self._latest = self._latest, None
        return latest


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
        self._desc = ""     # the words of the last report

    def _report(self, done: int, desc: str) -> None:
        self.done = min(self.total, max(self.done, int(done)))
        self._desc = desc
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

    def during(self, call, *, relay: Relay | None = None, then=None, every: float = TICK_S):
        """``call()`` run in a helper thread while this thread reports every ``every`` seconds:
        the latest report ``call`` made through ``relay``, passed to ``then`` (a callback of
        :meth:`inner`), else the last words said with the seconds the call has taken so far.
        Returns what ``call`` returns; its exception is raised here. Without a progress callback
        ``call`` simply runs here."""
        if self.progress is None:
            return call()
        box: dict = {}

        def target():
            try:
                box["value"] = call()
            except BaseException as exc:  # noqa: BLE001 - raised again in the caller's thread
                box["error"] = exc

        worker = threading.Thread(target=target, daemon=True, name="kdci-stage")
        t0, words = time.monotonic(), self._desc
        worker.start()
        while worker.is_alive():
            worker.join(every)
            latest = relay.take() if relay is not None else None
            if latest is not None and then is not None:
                then(*latest)
                words = self._desc
            elif worker.is_alive():
                self._report(self.done, f"{words} · {time.monotonic() - t0:.0f} s")
        latest = relay.take() if relay is not None else None
        if latest is not None and then is not None:
            then(*latest)
        if "error" in box:
            raise box["error"]
        return box["value"]
