"""Table rows of a comparison (what the Compare page, the HTML and the Markdown report show):
accuracy per method and setting, the paired gain with its test, and the pairs themselves."""

from __future__ import annotations


def _pm(mean: float | None, std: float | None, digits: int = 2, sign: bool = False) -> str:
    if mean is None:
        return "n/a"
    m = f"{mean:+.{digits}f}" if sign else f"{mean:.{digits}f}"
    return m if std is None else f"{m} ± {std:.{digits}f}"


def _fmt(value: float | None, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _setting_column(comparison) -> str:
    return "KDCI" if comparison.field == "kdci" else comparison.field


def _setting_text(comparison, value) -> str:
    return ("on" if value else "off") if comparison.field == "kdci" else str(value)


def accuracy_columns(comparison) -> list[str]:
    return ["method", _setting_column(comparison), "seeds", "accuracy (%)", "runs"]


def accuracy_table(comparison) -> list[dict]:
    """Rows of final student accuracy per method and setting (mean ± sample std over seeds)."""
    col = _setting_column(comparison)
    return [{"method": g.method, col: _setting_text(comparison, g.value), "seeds": g.n,
             "accuracy (%)": _pm(g.mean, g.std), "mean": g.mean, "std": g.std,
             "runs": ", ".join(g.run_ids)} for g in comparison.groups]


def gain_table(comparison) -> list[dict]:
    """Rows of the paired gain per method (and setting), with the paired t-test across seeds."""
    kdci = comparison.field == "kdci"
    return [{"method": m.method, **({} if kdci else {comparison.field: m.setting}), "pairs": m.n,
             "gain (points)": _pm(m.mean, m.std, sign=True),
             "p-value (paired t)": _fmt(m.p_value, ".3g"), "positive pairs": f"{m.positive}/{m.n}",
             "wall time on/off": _fmt(m.wall_time_ratio, ".2f") + ("×" if m.wall_time_ratio else ""),
             "peak memory on/off": _fmt(m.peak_memory_ratio, ".2f") + ("×" if m.peak_memory_ratio else "")}
            for m in comparison.gains.values()]


def pairs_table(comparison) -> list[dict]:
    if comparison.field == "kdci":
        return [{"method": p.method, "seed": p.seed, "KDCI on": f"{p.on_accuracy:.2f}",
                 "KDCI off": f"{p.off_accuracy:.2f}", "gain": f"{p.gain:+.2f}", "on run": p.on_id,
                 "off run": p.off_id} for m in comparison.gains.values() for p in m.pairs]
    ref = f"{comparison.field}={comparison.reference}"
    return [{"method": p.method, "seed": p.seed, comparison.field: p.setting, "setting": f"{p.on_accuracy:.2f}",
             ref: f"{p.off_accuracy:.2f}", "gain": f"{p.gain:+.2f}", "setting run": p.on_id,
             "reference run": p.off_id} for m in comparison.gains.values() for p in m.pairs]


#: telemetry columns shown for each KDCI-on run (kdci.telemetry's keys) and how to print them
TELEMETRY_COLUMNS = (("kdci_compensation", "compensation / logit spread", ".3f"),
                     ("kdci_attention_entropy", "attention entropy / log K'", ".2f"),
                     ("kdci_prototypes_used", "prototypes used", "d"),
                     ("kdci_top_attention", "top prototype's attention", ".2f"),
                     ("kdci_prototype_agreement", "argmax prototype = teacher class", ".2f"),
                     ("kdci_pz_entropy", "P(z) entropy / log K'", ".2f"),
                     ("compensated_accuracy", "compensated accuracy (%)", ".2f"))


def telemetry_table(comparison) -> list[dict]:
    """One row per KDCI-on run with telemetry: did KDCI act (docs/KDCI_IMPLEMENTATION.md)?"""
    rows = []
    for r in comparison.runs:
        tel = r.kdci_telemetry
        if not tel:
            continue
        row = {"run": r.run_id, "setting": r.label}
        for key, title, spec in TELEMETRY_COLUMNS:
            row[title] = _fmt(tel.get(key), spec)
        row["inert"] = tel.get("inert_reason") or "no"
        rows.append(row)
    return rows


PREDICTIONS_TITLE = "Students' predictions on the test split (collapsed: one class above 80%)"


def predictions_table(comparison) -> list[dict]:
    """One row per run: its accuracy, the class its student predicts most and for what share of
    the test images, and whether it collapsed (``runs.collapse``); empty when no run has the
    histogram (runs of an older release)."""
    rows = []
    for r in comparison.runs:
        p = r.predictions
        if p is None:
            continue
        rows.append({"run": r.run_id, "setting": r.label, "accuracy (%)": f"{r.student_accuracy:.2f}",
                     "most predicted class": p["name"], "its share (%)": f"{100 * p['share']:.1f}",
                     "collapsed": "yes" if p["collapsed"] else "no"})
    return rows if any(r.predictions for r in comparison.runs) else []


#: config fields a sweep's view leaves out: what is not a setting (seed, device), or is shown
#: another way (the teacher's hash beside its path)
_NOT_SWEPT = ("seed", "device", "teacher_sha256")


def sweep_fields(comparison) -> tuple[dict[str, list], list[float]]:
    """The config fields in which the compared runs differ ({field: one value per run}, a
    ``method_params`` entry as ``method_params.KEY``) and the runs' final accuracies: the data of
    the parallel-coordinates view (``figures.sweep``)."""
    flat = []
    for r in comparison.runs:
        cfg = {k: v for k, v in r.config.items() if k not in _NOT_SWEPT and k != "method_params"}
        cfg.update({f"method_params.{k}": v for k, v in (r.config.get("method_params") or {}).items()})
        flat.append(cfg)
    names = sorted({k for c in flat for k in c})
    differ = [n for n in names if len({repr(c.get(n)) for c in flat}) > 1]
    return {n: [c.get(n) for c in flat] for n in differ}, [r.student_accuracy for r in comparison.runs]


#: config fields that never tell runs apart in a reader's eyes (shown once, or not at all)
_CONFIG_HIDDEN = ("teacher_sha256",)


def config_tables(comparison) -> tuple[list[dict], list[dict]]:
    """What reproduces every compared run: the settings all of them share (field, value), and one
    row per run with the fields in which runs differ, the teacher's hash and the command line."""
    import shlex

    from ..distill.config import command_line

    configs = {r.run_id: r.config for r in comparison.runs}
    labels = {r.run_id: r.name for r in comparison.runs}
    names = sorted({k for c in configs.values() for k in c if k not in _CONFIG_HIDDEN})
    shown = lambda v: "" if v is None else (", ".join(f"{k}={x}" for k, x in sorted(v.items())) or "{}"  # noqa: E731
                                            if isinstance(v, dict) else str(v))
    differ = [n for n in names if len({shown(c.get(n)) for c in configs.values()}) > 1]
    shared = [{"field": n, "value": shown(next(iter(configs.values())).get(n))}
              for n in names if n not in differ]
    named = any(labels.values())
    per_run = [{"run": run_id, **({"name": labels[run_id] or ""} if named else {}),
                **{n: shown(c.get(n)) for n in differ},
                "teacher sha256": (c.get("teacher_sha256") or "")[:12],
                "command": shlex.join(command_line(c))} for run_id, c in configs.items()]
    return shared, per_run
