"""Comparison of finished runs: a setting against its reference (KDCI on vs off by default; any
one config field: a correction, an ablation, K, ...), paired by seed.

Why paired: runs of the same method and seed share the substitution data's randomness up to
the compared setting, so the per-seed gain (setting − reference) and a paired t-test across seeds
say more than two overlapping means. Two runs pair only when they agree on every config field
but the one compared and the seed (``pairing_key``); a run without such a partner is reported
with the fields in which its nearest candidate differs.
"""

from __future__ import annotations

import html
import json
import math
import re
from dataclasses import asdict, dataclass, field
from typing import Sequence

import numpy as np

from ..common.errors import InputError
from ..runs import Run, RunStore
from ..runs.collapse import collapse_text, prediction_summary
from ..runs.configs import canonical_config
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
    #: the run's stored config (what reproduces it; what pairing compares)
    config: dict = field(default_factory=dict)
    #: the user's label for the run (runs.names), None when it has none; escaped by every format
    name: str | None = None
    #: the final student's prediction histogram and its dominant class (runs.collapse), None for
    #: a run of an older release
    predictions: dict | None = None

    @property
    def collapsed(self) -> bool:
        return bool(self.predictions and self.predictions["collapsed"])


@dataclass
class Group:
    """All compared runs of one method and one value of the compared field."""

    method: str
    value: object
    run_ids: list[str]
    seeds: list
    accuracies: list[float]
    mean: float | None
    std: float | None
    field: str = "kdci"

    @property
    def n(self) -> int:
        return len(self.accuracies)

    @property
    def kdci(self) -> bool:
        return bool(self.value) if self.field == "kdci" else None


@dataclass
class Pair:
    """A run with the compared setting ("on") and one with the reference ("off"), alike in every
    other config field and seed (for the default field: KDCI on and KDCI off)."""

    method: str
    seed: int | None
    on_id: str
    off_id: str
    on_accuracy: float
    off_accuracy: float
    setting: object = True

    @property
    def gain(self) -> float:
        return self.on_accuracy - self.off_accuracy


@dataclass
class MethodGain:
    """Paired gains of one method and setting, and the paired t-test across its seeds."""

    method: str
    pairs: list[Pair]
    mean: float | None
    std: float | None
    p_value: float | None        # scipy.stats.ttest_rel, with >= 2 pairs
    t_statistic: float | None
    positive: int                # pairs with a gain > 0
    wall_time_ratio: float | None    # mean on / mean off over the pairs
    peak_memory_ratio: float | None
    setting: object = True

    @property
    def n(self) -> int:
        return len(self.pairs)


@dataclass
class Comparison:
    runs: list[RunSummary]
    groups: list[Group]
    gains: dict[str, MethodGain]
    notes: list[str] = field(default_factory=list)
    field: str = "kdci"
    reference: object = False

    @property
    def title(self) -> str:
        """What is compared with what, as a heading says it."""
        if self.field == "kdci":
            return "KDCI gain (on − off, paired by seed)"
        return f"Gain of {self.field} over {self.field}={self.reference} (paired by seed)"

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
                "field": self.field, "reference": self.reference,
                "gains": {m: {"method": g.method, "setting": g.setting, "n": g.n, "mean": g.mean, "std": g.std,
                              "p_value": g.p_value, "t_statistic": g.t_statistic,
                              "positive": g.positive, "wall_time_ratio": g.wall_time_ratio,
                              "peak_memory_ratio": g.peak_memory_ratio,
                              "pairs": [{**asdict(p), "gain": p.gain} for p in g.pairs]}
                          for m, g in self.gains.items()},
                "notes": list(self.notes)}

    def to_markdown(self) -> str:
        parts = ["## Final student accuracy (mean ± sample std over seeds)", "",
                 md_table(tables.accuracy_table(self), tables.accuracy_columns(self))]
        parts += ["", f"## {self.title}", ""]
        if self.gains:
            parts += [md_table(tables.gain_table(self)), "", "### Pairs", "", md_table(tables.pairs_table(self))]
        else:
            parts.append(self.no_pairs_text())
        rows = tables.telemetry_table(self)
        if rows:
            parts += ["", "## KDCI telemetry (last epoch of each KDCI-on run)", "", md_table(rows)]
        rows = tables.predictions_table(self)
        if rows:
            parts += ["", f"## {tables.PREDICTIONS_TITLE}", "", md_table(rows)]
        if self.notes:
            parts += ["", "## Notes", ""] + [f"- {md_text(n)}" for n in self.notes]
        return "\n".join(parts) + "\n"

    def no_pairs_text(self) -> str:
        if self.field == "kdci":
            return "No KDCI-on run has a KDCI-off partner of the same method and seed."
        return (f"No run with another {self.field} has a {self.field}={self.reference} partner of the "
                "same method, seed and other settings.")


#: characters that Markdown would read as markup inside a cell or a list item (code, emphasis,
#: links and images, table pipes, strike-through); ``_`` is left alone (GFM ignores it inside a
#: word, and config names are full of it)
_MD_SPECIAL = re.compile(r"([\\`*\[\]|~])")


def md_text(value) -> str:
    """``value`` as literal Markdown text: HTML's ``& < >`` as entities (a run named
    ``<script>`` stays text in every renderer), Markdown's markup characters backslash-escaped,
    line breaks as spaces (one table cell, one list item)."""
    text = html.escape(" ".join(str(value).splitlines()), quote=False)
    return _MD_SPECIAL.sub(r"\\\1", text)


def md_table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "(none)"
    cols = list(columns or rows[0])
    lines = ["| " + " | ".join(md_text(c) for c in cols) + " |", "|" + "---|" * len(cols)]
    lines += ["| " + " | ".join(md_text(r[c]) for c in cols) + " |" for r in rows]
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
    cfg, res = run.config(), run.fit_result()
    return RunSummary(run.run_id, run.label, cfg.get("method"), bool(cfg.get("kdci")), cfg.get("seed"),
                      cfg.get("dataset"), cfg.get("student"), cfg.get("epochs"),
                      float(res.student_accuracy), _num(res.teacher_accuracy),
                      _num(res.wall_time_s), _num(res.peak_memory_mb), res.device,
                      res.kdci_telemetry,
                      # paths resolved: one folder is one value, however a run's command spelled it
                      {**canonical_config(cfg), "teacher_sha256": res.teacher_sha256},
                      run.status().get("name"),
                      prediction_summary({"prediction_counts": res.prediction_counts,
                                          "class_names": res.class_names}))


def _ratio(on: list, off: list) -> float | None:
    on, off = [v for v in on if v is not None], [v for v in off if v is not None]
    if not on or len(on) != len(off) or sum(off) <= 0:
        return None
    return _num(np.mean(on) / np.mean(off))


def _method_gain(method: str, pairs: list[Pair], by_id: dict[str, RunSummary], setting=True) -> MethodGain:
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
                      _ratio([r.peak_memory_mb for r in ons], [r.peak_memory_mb for r in offs]), setting)


#: the reference value of each field that has a natural one (others: the most common value)
REFERENCES = {"kdci": False, "correction": "none", "ablation": "none", "attn_input": "raw",
              "fusion": "add", "augment": "none", "preset": "quick"}
#: never part of a pairing: the seed is what pairs are made of; the device does not change a run
UNPAIRED_FIELDS = ("seed", "device")
#: fields that mean nothing with KDCI off, so an on/off pair need not agree on them
KDCI_ONLY = ("k", "ablation", "attn_dim", "attn_input", "attn_init_gain", "fusion", "pca_dim",
             "kdci_weight_decay", "dictionary_source", "dictionary_source_arch")


def pairing_key(config: dict, field: str) -> str:
    """What two runs must share to be paired on ``field``: every config field but it, the seed
    and the device (and, comparing KDCI on and off, KDCI's own options); the config as compared
    carries the teacher file's sha256, so two teachers never pair, whatever their paths."""
    skip = _skipped(config, field)
    return json.dumps({k: v for k, v in sorted(config.items()) if k not in skip}, sort_keys=True, default=str)


def _skipped(config: dict, field: str) -> set:
    skip = {field, *UNPAIRED_FIELDS, *(KDCI_ONLY if field == "kdci" else ())}
    if config.get("teacher_sha256"):
        skip.add("teacher")  # the file's bytes identify the teacher, not where it lies
    return skip


def differing_fields(a: dict, b: dict, field: str) -> list[str]:
    """The fields (beyond ``field``, seed, device) in which two configs differ."""
    skip = _skipped(a, field) & _skipped(b, field)
    return sorted(k for k in set(a) | set(b) if k not in skip and a.get(k) != b.get(k))


def _value_text(field: str, value) -> str:
    if field == "kdci":
        return f"KDCI-{'on' if value else 'off'}"
    return f"{field}={value}"


def compare_runs(store: RunStore, run_ids: Sequence[str], field: str = "kdci") -> Comparison:
    """Group finished runs by (method, value of ``field``) and pair each non-reference value with
    the reference per method and seed, between runs alike in every other config field."""
    runs = [_summary(r) for r in load_finished(store, run_ids)]
    if field != "kdci" and not any(field in r.config for r in runs):
        raise InputError(f"compare by {field!r}: no compared run has that config field")
    values = [r.config.get(field, r.kdci if field == "kdci" else None) for r in runs]
    reference = REFERENCES.get(field, max(values, key=values.count) if values else None)
    notes = []
    if len(set(run_ids)) < len(run_ids):
        notes.append("repeated run ids were compared once")
    groups: dict[tuple, list[int]] = {}
    for i, r in enumerate(runs):
        groups.setdefault((r.method, values[i]), []).append(i)
    methods = list(dict.fromkeys(r.method for r in runs))
    order = sorted(groups, key=lambda k: (methods.index(k[0]), k[1] == reference, str(k[1])))
    out_groups = []
    for key in order:
        members = [runs[i] for i in groups[key]]
        accs = [r.student_accuracy for r in members]
        out_groups.append(Group(key[0], key[1], [r.run_id for r in members], [r.seed for r in members],
                                accs, *_mean_std(accs), field=field))
        keys = {pairing_key(r.config, field) for r in members}
        if len(keys) > 1:
            fields = sorted({f for a in members for b in members for f in differing_fields(a.config, b.config, field)})
            notes.append(f"{key[0]} {field}={_on_off(field, key[1])} mixes runs that differ in "
                         f"{', '.join(fields)}: its mean is over unlike runs")
    slots: dict[tuple, dict] = {}
    for i, r in enumerate(runs):
        slots.setdefault((r.method, r.seed, pairing_key(r.config, field)), {}).setdefault(values[i], []).append(r)
    pairs: dict[tuple, list[Pair]] = {}
    for (method, seed, _), sides in slots.items():
        where = f"{method} seed {seed}"
        for value, members in sides.items():
            for extra in members[1:]:
                notes.append(f"run {extra.run_id}: another {_value_text(field, value)} run of {where} "
                             "with the same settings; only the first is paired")
        refs = sides.get(reference, [])
        for value, members in sides.items():
            if value == reference:
                continue
            if refs:
                on, off = members[0], refs[0]
                pairs.setdefault((method, value), []).append(
                    Pair(method, seed, on.run_id, off.run_id, on.student_accuracy, off.student_accuracy, value))
        if not refs or len(sides) == 1:
            lone = next(iter(sides.values()))[0]
            partner = _value_text(field, not lone.kdci) if field == "kdci" else (
                _value_text(field, reference) if values[runs.index(lone)] != reference else f"other {field}")
            near = [differing_fields(lone.config, r.config, field) for r in runs
                    if r.method == method and r.seed == seed and r is not lone]
            why = f" (the nearest differs in {', '.join(min(near, key=len))})" if near and min(near, key=len) else ""
            notes.append(f"run {lone.run_id}: no {partner} run of {where} with the same settings{why}; not paired")
    by_id = {r.run_id: r for r in runs}
    settings = {k: v for k, v in pairs.items()}
    multi = len({v for _, v in settings}) > 1
    gains = {(m if not multi else f"{m} {field}={v}"): _method_gain(m, settings[(m, v)], by_id, v)
             for (m, v) in sorted(settings, key=lambda k: (methods.index(k[0]), str(k[1])))}
    for r in runs:
        reason = (r.kdci_telemetry or {}).get("inert_reason")
        if reason:
            notes.append(f"KDCI is inert in run {r.run_id} ({r.label}): {reason}")
        if r.collapsed:
            notes.append(f"run {r.run_id} ({r.label}): the student is {collapse_text(r.predictions)}; "
                         "its accuracy is one class's share of the test split")
    return Comparison(runs, out_groups, gains, notes, field, reference)


def _on_off(field: str, value) -> str:
    return ("on" if value else "off") if field == "kdci" else str(value)
