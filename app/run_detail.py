"""The run detail view (``/runs?run=ID``): one run's config, teacher and its hash, status history,
the worker's log, its error, curves and KDCI telemetry, system metrics per epoch, the final
student's prediction histogram (a collapsed student flagged), its artefacts, and the actions its
status allows (cancel, resume, delete, export). Presentation only: every action is a
``kdci_core`` call.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import streamlit as st

from app.shared import as_text
from kdci_core.common.errors import InputError
from kdci_core.figures.runs import curves_figure
from kdci_core.figures.students import predictions_figure
from kdci_core.kdci import inert_reason
from kdci_core.models.export import FORMATS, SUFFIXES
from kdci_core.runs import ACTIVE, RESUMABLE, RunStore, cancel, export_student, resume
from kdci_core.runs.collapse import COLLAPSE_SHARE, collapse_text, prediction_summary
from kdci_core.common.system import SYSTEM_METRICS
from kdci_core.runs.table import format_seconds, table_rows
from kdci_core.runs.worklog import PROGRESS_EVERY_S

#: lines of worker.log the Log tab shows
LOG_LINES = 200


def _when(t) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(t)) if t else ""


def show(store: RunStore, run_id: str) -> None:
    """Everything about one run, with the actions that apply to it now."""
    try:
        run = store.get(run_id)
    except InputError as exc:  # the id came from the address bar: text, never Markdown
        st.error(as_text(exc))
        return
    try:
        summary, result = run.summary(), run.result() or {}
    except InputError as exc:  # a damaged run file: say which, offer what still works
        st.error(f"Run {run_id} is corrupt: {exc}")
        confirm = st.checkbox("Confirm delete", key=f"detail_confirm_{run_id}")
        if st.button("Delete", key=f"detail_delete_{run_id}", disabled=not confirm):
            store.delete(run_id)
            st.toast(f"{run_id}: deleted")
        return
    status = summary["status"]
    st.subheader(f"Run {run_id}")
    cfg = summary["config"]
    st.caption(f"{run.label} · {cfg.get('dataset')} · {cfg.get('student')} student · preset "
               f"{cfg.get('preset', 'quick')} · backend {summary.get('backend') or 'n/a'}")
    c1, c2, c3, c4, c5 = st.columns(5)
    c1.metric("Status", status, border=True)
    # the value alone, the setting under it: "deepinv (KDCI)" was cut to "deepin..." in a fifth
    # of the page; the whole text is the card's tooltip
    kdci = "KDCI on" if cfg.get("kdci") else "KDCI off"
    c2.metric("Method", str(cfg.get("method")), delta=kdci, delta_color="off", delta_arrow="off", border=True,
              help=f"{cfg.get('method')}, {kdci}")
    last = summary["history"][-1] if summary["history"] else {}
    c3.metric("Epoch", f"{last.get('epoch', 0)}/{summary['config'].get('epochs')}", border=True)
    row = next((r for r in table_rows(store, text=run_id) if r["run"] == run_id), None)
    if row is not None:
        eta = format_seconds(row["eta_s"]) if status == "running" else ""
        queue = f"queued #{row['queue']}" if row["queue"] else ""
        c4.metric("Step", f"{row['step']}/{row['total_steps'] or '?'}", border=True,
                  help="student steps done / planned (updated about every second while it runs)",
                  delta=f"ETA {eta}" if eta else (queue or None), delta_color="off")
    acc = result.get("student_accuracy", last.get("student_accuracy"))
    collapsed = bool((prediction_summary(result) or {}).get("collapsed"))
    c5.metric("Student accuracy", "n/a" if acc is None else f"{acc:.2f}%", border=True,
              delta="collapsed" if collapsed else None, delta_color="inverse", delta_arrow="off")
    if summary["error"]:
        st.error(summary["error"])
        tb = run.status().get("traceback")
        if tb:
            st.code(tb, language="text")
    predictions = prediction_summary(result)
    if predictions and predictions["collapsed"]:
        st.error(f"This student is {collapse_text(predictions)}: its accuracy is that class's share of "
                 "the test split, not what it learnt. See the Predictions tab.", icon=":material/report:")
    actions(store, run, status)
    notes(run)
    tabs = st.tabs(["Curves", "Config", "Status history", "Log", "Artefacts", "Export", "System",
                    "Predictions"])
    with tabs[0]:
        series = [run.series()]
        left, right = st.columns(2)
        left.plotly_chart(curves_figure(series, y="student_accuracy"), key=f"detail_acc_{run_id}")
        right.plotly_chart(curves_figure([run.series("step")], x="step", y="loss"), key=f"detail_loss_{run_id}")
        if any("kdci_compensation" in h for h in series[0]["history"]):
            left, right = st.columns(2)
            left.plotly_chart(curves_figure(series, y="kdci_compensation"), key=f"detail_comp_{run_id}")
            right.plotly_chart(curves_figure(series, y="kdci_attention_entropy"), key=f"detail_ent_{run_id}")
            reason = inert_reason(next(h for h in reversed(series[0]["history"]) if "kdci_compensation" in h))
            if reason:
                st.warning(f"KDCI is inert in this run: {reason}", icon=":material/warning:")
    with tabs[1]:
        st.dataframe([{"field": k, "value": str(v)} for k, v in cfg.items()], hide_index=True,
                     key=f"detail_cfg_{run_id}")
        st.caption(f"Teacher: `{cfg.get('teacher')}` ({result.get('teacher_arch') or cfg.get('teacher_arch')}), "
                   f"sha256 `{result.get('teacher_sha256') or 'recorded when the run finishes'}`"
                   + (f", test accuracy {result['teacher_accuracy']:.2f}%" if result.get("teacher_accuracy") else ""))
    with tabs[2]:
        st.dataframe([{"status": t["status"], "at": _when(t["at"]), "error": t.get("error") or ""}
                      for t in summary.get("status_history", [])], hide_index=True,
                     key=f"detail_hist_{run_id}")
    with tabs[3]:
        st.caption(f"The worker's lines: its start, a resume's decision, every epoch (loss, student "
                   f"accuracy), the method's long steps (at most one line per {PROGRESS_EVERY_S:.0f} s), "
                   f"warnings and its end. The last {LOG_LINES} lines; the whole file is under Artefacts.")
        st.code(run.log_tail(LOG_LINES) or "(the worker has written nothing yet)", language="text")
    with tabs[4]:
        files = run.artifacts()
        st.dataframe([{"file": f["name"], "KiB": round(f["bytes"] / 1024, 1)} for f in files],
                     hide_index=True, key=f"detail_files_{run_id}")
        for name in ("student.safetensors", "result.json", "metrics.jsonl", "config.json", "worker.log"):
            if run.path(name).exists():
                st.download_button(f"Download {name}", run.path(name).read_bytes(), file_name=f"{run_id}-{name}",
                                   key=f"detail_dl_{run_id}_{name}")
    with tabs[5]:
        export_form(store, run_id, status)
    with tabs[6]:
        system_curves(series[0], run_id)
    with tabs[7]:
        if predictions is None:
            st.info("The final student's prediction histogram is written when the run finishes "
                    "(runs of an older release have none).")
        else:
            st.plotly_chart(predictions_figure(predictions["counts"], predictions["class_names"],
                                               threshold=COLLAPSE_SHARE), key=f"detail_pred_{run_id}")


def system_curves(series: dict, run_id: str) -> None:
    """The worker's CPU, memory and (on CUDA) GPU memory per epoch, two charts a row."""
    keys = [k for k in SYSTEM_METRICS if any(k in h for h in series["history"])]
    if not keys:
        st.info("System metrics are recorded with each epoch (CPU %, resident memory, CUDA memory): "
                "waiting for the first epoch, or a run of an older release.")
        return
    for i in range(0, len(keys), 2):
        for col, y in zip(st.columns(2), keys[i:i + 2]):
            col.plotly_chart(curves_figure([series], y=y), key=f"detail_sys_{y}_{run_id}")


def notes(run) -> None:
    """The run's tags and notes, editable (kept in the run folder, shown in the run table); the
    tags in the label are text (a tag ``![x](URL)`` must not load an image)."""
    current = run.annotations()
    tags = as_text(", ".join(current["tags"]))
    with st.expander(f"Tags and notes{': ' + tags if tags else ''}",
                     expanded=bool(current["notes"])):
        with st.form(f"detail_notes_{run.run_id}", border=False):
            tags = st.text_input("Tags (comma-separated)", ", ".join(current["tags"]),
                                 key=f"detail_tags_{run.run_id}")
            text = st.text_area("Notes", current["notes"], key=f"detail_text_{run.run_id}", height=80)
            if st.form_submit_button("Save tags and notes"):
                run.annotate(tags=tags.split(","), notes=text)
                st.toast(f"{run.run_id}: tags and notes saved")


def actions(store: RunStore, run, status: str) -> None:
    run_id = run.run_id
    cols = st.columns(4)
    if status in ACTIVE and cols[0].button("Cancel", key=f"detail_cancel_{run_id}"):
        try:
            st.toast(f"{run_id}: {cancel(store, run_id)}")
        except InputError as exc:
            st.warning(str(exc))
    if status in RESUMABLE and cols[1].button("Resume", key=f"detail_resume_{run_id}",
                                              help="from its last checkpoint, on the backend it ran on"):
        try:
            st.toast(f"{run_id}: resumed; it {resume(store, run_id)}")
        except InputError as exc:
            st.warning(str(exc))
    if status not in ACTIVE:
        confirm = cols[2].checkbox("Confirm delete", key=f"detail_confirm_{run_id}")
        if cols[3].button("Delete", key=f"detail_delete_{run_id}", disabled=not confirm,
                          help="removes the run folder for good"):
            try:
                store.delete(run_id)
            except InputError as exc:
                st.warning(str(exc))
            else:
                st.query_params.pop("run", None)
                st.toast(f"{run_id}: deleted")
                st.rerun()


def export_form(store: RunStore, run_id: str, status: str) -> None:
    if status != "finished":
        st.info("A run's student can be exported once the run has finished.")
        return
    fmt = st.radio("Format", list(FORMATS), horizontal=True, key=f"detail_fmt_{run_id}",
                   help="safetensors: the weights; torchscript and onnx: a graph that runs without "
                        "this project (ONNX via onnxruntime)")
    if st.button("Export the student", key=f"detail_export_{run_id}"):
        with tempfile.TemporaryDirectory() as tmp:
            try:
                path, sidecar = export_student(store, run_id, fmt, Path(tmp) / f"student{SUFFIXES[fmt][0]}")
            except InputError as exc:
                st.error(str(exc))
                return
            st.session_state[f"detail_export_files_{run_id}"] = {
                "fmt": fmt, "model": (path.name, path.read_bytes()), "sidecar": (sidecar.name, sidecar.read_bytes())}
    files = st.session_state.get(f"detail_export_files_{run_id}")
    if files and files["fmt"] == fmt:
        c1, c2 = st.columns(2)
        c1.download_button(f"Download {files['model'][0]}", files["model"][1],
                           file_name=f"{run_id}-{files['model'][0]}", key=f"detail_dl_model_{run_id}")
        c2.download_button(f"Download {files['sidecar'][0]}", files["sidecar"][1],
                           file_name=f"{run_id}-{files['sidecar'][0]}", key=f"detail_dl_sidecar_{run_id}")
