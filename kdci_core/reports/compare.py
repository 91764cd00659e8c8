"""Comparison of finished runs, KDCI on vs off across seeds.

Why paired: runs of the same method and seed share the substitution data's randomness up to
the KDCI plug-in, so the per-seed gain (on − off) and a paired t-test across seeds say more
than two overlapping means.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from ..common.errors import InputError
from ..runs import Run, RunStore
from . import tables


def _num(value) -> float | None:
    """A JSON-safe float (None for missing, NaN or infinite)."""
    if value is None:
        return None
    v = float(value)
    return v if math.isfinite(v) else None


def _mean_std(values: Sequence[float]) -> tuple[float | None, float | None]:
    """Mean and sample std (ddof=1; None with fewer than 2 values)."""
    if not values:
        return None, None
    a = np.asarray(values, dtype=float)
    return float(a.mean()), (float(a.std(ddof=1)) if len(a) > 1 else None)


@dataclass
class RunSummary:
    run_id: str
    label: str
    method: str
    kdci: bool
    seed: int | None
    dataset: str | None
    student: str | None
    epochs: int | None
    student_accuracy: float
    teacher_accuracy: float | None
    wall_time_s: float | None
    peak_memory_mb: float | None
    device: str | None
    #: KDCI's telemetry at the end of a KDCI-on run (kdci.telemetry), with its inert reason
    kdci_telemetry: dict | None = None


@dataclass
class Group:
    """All compared runs of one method and KDCI setting."""

    method: str
    kdci: bool
    run_ids: list[str]
    seeds: list
    accuracies: list[float]
    mean: float | None
    std: float | None

    @property
    def n(self) -> int:
        return len(self.accuracies)


@dataclass
class Pair:
    """A KDCI-on and a KDCI-off run of the same method, seed, dataset, student and epochs."""

    method: str
    seed: int | None
    on_id: str
    off_id: str
    on_accuracy: float
    off_accuracy: float

    @property
    def gain(self) -> float:
        return self.on_accuracy - self.off_accuracy


@dataclass
class MethodGain:
    """Paired gains of one method and the paired t-test across its seeds."""

    method: str
    pairs: list[Pair]
    mean: float | None
    std: float | None
    p_value: float | None        # scipy.stats.ttest_rel, with >= 2 pairs
    t_statistic: float | None
    positive: int                # pairs with a gain > 0
    wall_time_ratio: float | None    # mean on / mean off over the pairs
    peak_memory_ratio: float | None

    @property
    def n(self) -> int:
        return len(self.pairs)


@dataclass
class Comparison:
    runs: list[RunSummary]
    groups: list[Group]
    gains: dict[str, MethodGain]
    notes: list[str] = field(default_factory=list)

    def run(self, run_id: str) -> RunSummary:
        return next(r for r in self.runs if r.run_id == run_id)

    def pairs(self) -> list[Pair]:
        return [p for m in self.gains.values() for p in m.pairs]

    def first_pair(self) -> Pair | None:
        pairs = self.pairs()
        return pairs[0] if pairs else None

    def to_dict(self) -> dict:
        """JSON-safe: plain types, None for a missing std or p-value."""
        return {"runs": [asdict(r) for r in self.runs],
                "groups": [{**asdict(g), "n": g.n} for g in self.groups],
                "gains": {m: {"method": g.method, "n": g.n, "mean": g.mean, "std": g.std,
                              "p_value": g.p_value, "t_statistic": g.t_statistic,
                              "positive": g.positive, "wall_time_ratio": g.wall_time_ratio,
                              "peak_memory_ratio": g.peak_memory_ratio,
                              "pairs": [{**asdict(p), "gain": p.gain} for p in g.pairs]}
                          for m, g in self.gains.items()},
                "notes": list(self.notes)}

    def to_markdown(self) -> str:
        parts = ["## Final student accuracy (mean ± sample std over seeds)", "",
                 md_table(tables.accuracy_table(self), ["method", "KDCI", "seeds", "accuracy (%)", "runs"])]
        parts += ["", "## KDCI gain (on − off, paired by seed)", ""]
        if self.gains:
            parts += [md_table(tables.gain_table(self)), "", "### Pairs", "", md_table(tables.pairs_table(self))]
        else:
            parts.append("No KDCI-on run has a KDCI-off partner of the same method and seed.")
        rows = tables.telemetry_table(self)
        if rows:
            parts += ["", "## KDCI telemetry (last epoch of each KDCI-on run)", "", md_table(rows)]
        if self.notes:
            parts += ["", "## Notes", ""] + [f"- {n}" for n in self.notes]
        return "\n".join(parts) + "\n"


def md_table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(none)"
    cols = list(columns or rows[0])
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(str(r[c]).replace("|", "\\|") for c in cols) + " |" for r in rows]
    return "\n".join(lines)


def load_finished(store: RunStore, run_ids: Sequence[str]) -> list[Run]:
    """The runs, in order and without repeats; InputError names any unknown or unfinished run."""
    if not run_ids:
        raise InputError("runs: expected at least one finished run id, found none")
    runs = []
    for run_id in dict.fromkeys(run_ids):
        run = store.get(run_id)
        if run.result() is None:
            raise InputError(f"run {run_id}: not finished (status {run.status().get('status')}); "
                             "only finished runs can be compared")
        runs.append(run)
    return runs


def _summary(run: Run) -> RunSummary:
    cfg, res = run.config(), run.result() or {}
    return RunSummary(run.run_id, run.label, cfg.get("method"), bool(cfg.get("kdci")), cfg.get("seed"),
                      cfg.get("dataset"), cfg.get("student"), cfg.get("epochs"),
                      float(res["student_accuracy"]), _num(res.get("teacher_accuracy")),
                      _num(res.get("wall_time_s")), _num(res.get("peak_memory_mb")), res.get("device"),
                      res.get("kdci_telemetry"))


def _ratio(on: list, off: list) -> float | None:
    on, off = [v for v in on if v is not None], [v for v in off if v is not None]
    if not on or len(on) != len(off) or sum(off) <= 0:
        return None
    return _num(np.mean(on) / np.mean(off))


def _method_gain(method: str, pairs: list[Pair], by_id: dict[str, RunSummary]) -> MethodGain:
    from scipy.stats import ttest_rel

    pairs = sorted(pairs, key=lambda p: (p.seed is None, p.seed))
    gains = [p.gain for p in pairs]
    mean, std = _mean_std(gains)
    p_value = t = None
    if len(pairs) >= 2:
        test = ttest_rel([p.on_accuracy for p in pairs], [p.off_accuracy for p in pairs])
        p_value, t = _num(test.pvalue), _num(test.statistic)
    ons, offs = [by_id[p.on_id] for p in pairs], [by_id[p.off_id] for p in pairs]
    return MethodGain(method, pairs, mean, std, p_value, t, sum(g > 0 for g in gains),
                      _ratio([r.wall_time_s for r in ons], [r.wall_time_s for r in offs]),
                      _ratio([r.peak_memory_mb for r in ons], [r.peak_memory_mb for r in offs]))


def compare_runs(store: RunStore, run_ids: Sequence[str]) -> Comparison:
    """Group finished runs by (method, KDCI) and pair on with off per method and seed."""
    runs = [_summary(r) for r in load_finished(store, run_ids)]
    notes = []
    if len(set(run_ids)) < len(run_ids):
        notes.append("repeated run ids were compared once")
    groups: dict[tuple, list[RunSummary]] = {}
    for r in runs:
        groups.setdefault((r.method, r.kdci), []).append(r)
    order = sorted(groups, key=lambda k: ([m for m, _ in groups].index(k[0]), not k[1]))
    out_groups = []
    for key in order:
        members = groups[key]
        accs = [r.student_accuracy for r in members]
        out_groups.append(Group(key[0], key[1], [r.run_id for r in members], [r.seed for r in members],
                                accs, *_mean_std(accs)))
        if len({(r.dataset, r.student, r.epochs) for r in members}) > 1:
            notes.append(f"{key[0]} kdci={'on' if key[1] else 'off'} mixes datasets, students or epochs: "
                         "its mean is over unlike runs")
    slots: dict[tuple, dict[bool, list[RunSummary]]] = {}
    for r in runs:
        slots.setdefault((r.method, r.seed, r.dataset, r.student, r.epochs), {True: [], False: []})[r.kdci].append(r)
    pairs: dict[str, list[Pair]] = {}
    for (method, seed, dataset, student, epochs), sides in slots.items():
        on, off = sides[True], sides[False]
        where = f"{method} seed {seed} on {dataset} ({student}, {epochs} epochs)"
        for extra in on[1:] + off[1:]:
            notes.append(f"run {extra.run_id}: another KDCI-{'on' if extra.kdci else 'off'} run of {where}; "
                         "only the first is paired")
        if on and off:
            pairs.setdefault(method, []).append(
                Pair(method, seed, on[0].run_id, off[0].run_id, on[0].student_accuracy, off[0].student_accuracy))
        else:
            lone = (on or off)[0]
            notes.append(f"run {lone.run_id}: no KDCI-{'off' if lone.kdci else 'on'} run of {where}; not paired")
    by_id = {r.run_id: r for r in runs}
    gains = {m: _method_gain(m, pairs[m], by_id) for m in dict.fromkeys(r.method for r in runs) if m in pairs}
    for r in runs:
        reason = (r.kdci_telemetry or {}).get("inert_reason")
        if reason:
            notes.append(f"KDCI is inert in run {r.run_id} ({r.label}): {reason}")
    return Comparison(runs, out_groups, gains, notes)
