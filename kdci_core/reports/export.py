"""The self-contained report of a comparison: one HTML file that opens offline (plotly.js
embedded once), plus the same numbers as JSON and Markdown beside it.

Every file is made in memory first, then each replaces its previous version in one step
(``common.atomic_files``): a report killed or failing mid-write leaves the previous files whole."""

from __future__ import annotations

import html
import json
import time
from pathlib import Path
from typing import Sequence

from ..common.atomic_files import write_text
from ..common.errors import InputError
from ..common.progress import Progress
from ..diagnostics.stages import Stages
from ..figures.runs import curves_figure, gain_figure
from ..figures.students import predictions_figure
from ..runs import RunStore
from ..runs.collapse import COLLAPSE_SHARE
from .compare import Comparison, compare_runs, md_table, md_text
from .students import StudentComparison, student_comparison
from .tables import (PREDICTIONS_TITLE, accuracy_columns, accuracy_table, config_tables, gain_table, pairs_table,
                     predictions_table, telemetry_table)

FORMATS = ("html", "json", "md")
CONFIG_TITLE = "Run configurations (to reproduce every run)"

#: ``.scroll``: a wide table (the per-run configs and their command lines) or a fixed-size figure
#: scrolls inside its own box; without it the whole page grew to the table's width (2,929 px)
_CSS = ("body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse;"
        "margin:1em 0}th,td{border:1px solid #ccc;padding:4px 8px;text-align:left}th{background:#f4f4f4}"
        ".meta{color:#555}.scroll{overflow-x:auto;max-width:100%}.flag{color:#b00020;font-weight:600}")


def _html_table(rows: list[dict], columns: Sequence[str] | None = None) -> str:
    if not rows:
        return "<p>(none)</p>"
    cols = list(columns or rows[0])
    head = "".join(f"<th>{html.escape(c)}</th>" for c in cols)
    body = "".join("<tr>" + "".join(f"<td>{html.escape(str(r[c]))}</td>" for c in cols) + "</tr>" for r in rows)
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table></div>'


def _meta(comparison: Comparison) -> dict:
    return {"generated_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
            "run_ids": [r.run_id for r in comparison.runs],
            "devices": sorted({r.device for r in comparison.runs if r.device}),
            "datasets": sorted({r.dataset for r in comparison.runs if r.dataset})}


#: progress units: the student views (their own stages scaled in), an HTML figure, a file
STUDENT_UNITS, CURVES = 10, ("student_accuracy", "loss")
STUDENT_FIGURES = 4  # embedding, per-class delta, fixed, broken


def _planned_units(formats: Sequence[str], include_students: bool) -> int:
    """Progress units of a report at most: comparison, students, then each file (HTML: plotly.js,
    the gain figure, the curves and the student figures, one unit each)."""
    html = 1 + 1 + len(CURVES) + STUDENT_FIGURES * include_students
    return 1 + STUDENT_UNITS * include_students + sum(html if f == "html" else 1 for f in formats)


def export_report(store: RunStore, run_ids: Sequence[str], out: Path | str, *,
                  formats: Sequence[str] = FORMATS, include_students: bool = True,
                  projection: str = "tsne", device="cpu", max_points: int = 1000,
                  field: str = "kdci", progress: Progress = None) -> list[Path]:
    """Write ``out`` (HTML) and its ``.json`` / ``.md`` siblings; returns the paths written.
    ``field``: what is compared (``compare_runs``); ``progress``: one bar over the comparison,
    the student views, each file and each HTML figure."""
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise InputError(f"formats: expected some of {', '.join(FORMATS)}, found {list(formats)!r}")
    out = Path(out)
    formats = list(dict.fromkeys(formats))
    stages = Stages(progress, _planned_units(formats, include_students))
    stages.start(f"report: comparing {len(run_ids)} runs")
    comp = compare_runs(store, run_ids, field)
    meta = _meta(comp)
    students = None
    pair = comp.first_pair()
    if include_students and pair is not None:
        students = student_comparison(store, pair.on_id, pair.off_id, method=projection,
                                      max_points=max_points, device=device,
                                      progress=stages.inner("report: the student views", STUDENT_UNITS))
    elif include_students:
        comp.notes.append("students: no pair among these runs, so no student views")
        stages.skip(STUDENT_UNITS)
    texts = {}  # every file made before any is written: a failure leaves the previous report whole
    for fmt in formats:
        html_out = fmt == "html" and out.suffix.lower() in (".html", ".htm")
        path = out if html_out else out.with_suffix(f".{fmt}")
        if fmt == "json":
            stages.start("report: writing the JSON")
            texts[path] = json.dumps({**meta, "comparison": comp.to_dict(),
                                      "configs": {r.run_id: r.config for r in comp.runs},
                                      "students": students.to_dict() if students else None},
                                     indent=2, default=str)
        elif fmt == "md":
            stages.start("report: writing the Markdown")
            texts[path] = _markdown(comp, meta, students)
        else:
            texts[path] = _html(store, comp, meta, students, stages, include_students)
    written = [write_text(path, text) for path, text in texts.items()]  # each replaced in one step
    stages.finish(f"report: {len(written)} file(s) written")
    return written


def _header_lines(meta: dict) -> list[str]:
    return [f"Generated {meta['generated_at']}", f"Runs: {', '.join(meta['run_ids'])}",
            f"Device: {', '.join(meta['devices']) or 'unknown'}", f"Dataset: {', '.join(meta['datasets'])}"]


def _markdown(comp: Comparison, meta: dict, students: StudentComparison | None) -> str:
    text = "# KDCI comparison report\n\n" + "\n".join(f"- {md_text(line)}" for line in _header_lines(meta)) + "\n\n"
    text += comp.to_markdown()
    if students is not None:
        s = students.to_dict()
        text += (f"\n## Students: {md_text(s['labels'][0])} vs {md_text(s['labels'][1])}\n\n"
                 f"- fixed (right with KDCI, wrong without): {s['fixed']}\n"
                 f"- broken (wrong with KDCI, right without): {s['broken']}\n\n"
                 + md_table([{"class": c, "delta (points)": f"{d:+.2f}"} for c, d in s["per_class_delta"].items()])
                 + "\n")
    shared, per_run = config_tables(comp)
    text += (f"\n## {CONFIG_TITLE}\n\nShared by every run:\n\n" + md_table(shared)
             + "\n\nPer run (the fields in which runs differ, and the command that makes the run again):\n\n"
             + md_table(per_run) + "\n")
    return text


def _html(store: RunStore, comp: Comparison, meta: dict, students: StudentComparison | None,
          stages: Stages, planned_students: bool) -> str:
    from plotly.offline import get_plotlyjs

    def fig_html(fig, what: str, unit: bool = True) -> str:
        if unit:
            stages.start(f"report: HTML figure: {what}")
        return ('<div class="scroll">' + fig.to_html(full_html=False, include_plotlyjs=False,
                                                     config={"displaylogo": False}) + "</div>")

    stages.start("report: HTML tables and plotly.js")
    runs = [store.get(r.run_id).series() for r in comp.runs]
    body = ["<h1>KDCI comparison report</h1>",
            "".join(f'<p class="meta">{html.escape(line)}</p>' for line in _header_lines(meta)),
            "<h2>Final student accuracy (mean ± sample std over seeds)</h2>",
            _html_table(accuracy_table(comp), accuracy_columns(comp)),
            f"<h2>{html.escape(comp.title)}</h2>"]
    if comp.gains:
        body += [_html_table(gain_table(comp)), fig_html(gain_figure(comp), "the paired gain"),
                 "<h3>Pairs</h3>", _html_table(pairs_table(comp))]
    else:
        body.append(f"<p>{html.escape(comp.no_pairs_text())}</p>")
        stages.skip(1)
    telemetry = telemetry_table(comp)
    if telemetry:
        body += ["<h2>KDCI telemetry (last epoch of each KDCI-on run)</h2>", _html_table(telemetry)]
    predicted = predictions_table(comp)
    if predicted:
        body += [f"<h2>{html.escape(PREDICTIONS_TITLE)}</h2>", _html_table(predicted)]
        for r in (r for r in comp.runs if r.collapsed):  # each collapsed student's histogram
            p = r.predictions
            body += [f'<p class="flag">{html.escape(r.run_id)} ({html.escape(r.label)}): collapsed</p>',
                     fig_html(predictions_figure(p["counts"], p["class_names"], threshold=COLLAPSE_SHARE,
                                                 title=f"{r.label}: predicted classes"), "", unit=False)]
    body.append("<h2>Training curves</h2>")
    body += [fig_html(curves_figure(runs, "epoch", 0.0, y), f"{y.replace('_', ' ')} curves") for y in CURVES]
    if students is not None:
        body.append(f"<h2>Students: {html.escape(students.labels[0])} vs {html.escape(students.labels[1])}</h2>")
        body += [fig_html(f, f"students, {name.replace('_', ' ')}") for name, f in students.figures().items()]
    elif planned_students:
        stages.skip(STUDENT_FIGURES)
    shared, per_run = config_tables(comp)
    body += [f"<h2>{CONFIG_TITLE}</h2>", "<p>Shared by every run:</p>", _html_table(shared),
             "<p>Per run: the fields in which runs differ, and the command that makes the run again.</p>",
             _html_table(per_run)]
    if comp.notes:
        body.append("<h2>Notes</h2><ul>" + "".join(f"<li>{html.escape(n)}</li>" for n in comp.notes) + "</ul>")
    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>KDCI comparison report</title>'
            f'<style>{_CSS}</style>\n<script type="text/javascript">{get_plotlyjs()}</script>\n</head>\n<body>\n'
            + "\n".join(body) + "\n</body></html>\n")
