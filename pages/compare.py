"""Compare page: finished runs side by side, KDCI on vs off across seeds.

Pick runs (or open a deep link ``?runs=ID1,ID2``); see their accuracy curves (EMA smoothing,
x by epoch, step or wall time), the final accuracy per method and setting (mean ± std over
seeds), collapsed students flagged with their prediction histograms, the KDCI gain paired by
seed with its t-test, the sweep's settings against accuracy (parallel coordinates), two
students' features in 2-D, per-class deltas and the test images KDCI fixed or broke; download
the report as HTML, JSON or Markdown.

Presentation only: every number and figure is a ``kdci_core.reports`` / ``kdci_core.figures`` call.
The curves, the students and the report are fragments: their widgets rerun only their section,
not the comparison above them; the long actions draw real progress bars.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import streamlit as st

from app.shared import as_text, device, progress_bar, show_error
from kdci_core.common.errors import InputError
from kdci_core.diagnostics.projections import NAMES as PROJECTION_NAMES
from kdci_core.figures.runs import X_AXES, Y_AXES, curves_figure, gain_figure, short_id
from kdci_core.figures.students import predictions_figure
from kdci_core.figures.sweep import parallel_figure
from kdci_core.reports import (accuracy_columns, accuracy_table, compare_runs, config_tables, export_report,
                               gain_table, pairs_table, predictions_table, student_comparison, sweep_fields,
                               telemetry_table)
from kdci_core.reports.compare import UNPAIRED_FIELDS
from kdci_core.runs import RunStore
from kdci_core.runs.collapse import COLLAPSE_SHARE, collapse_text
from kdci_core.runs.configs import canonical_config

#: the Compare page's choices; their names live with the figures and projections that draw them
COMPARE_METRICS = ("student_accuracy", "loss", "compensated_accuracy", "kdci_compensation",
                   "kdci_attention_entropy")
STUDENT_PROJECTIONS = ("tsne", "umap", "pca")  # t-SNE first: the students' features separate best
DOWNLOADS = (("html", "HTML", "text/html"), ("json", "JSON", "application/json"),
             ("md", "Markdown", "text/markdown"))


def run_option_label(row: dict) -> str:
    """A chip that can be read: "seed 1 · KDCI on · deepinv · 3f2a1c". Streamlit cuts a chip at
    128 px (about 16 characters), so what tells the selected runs apart comes first; the
    options list shows it whole."""
    return (f"seed {row['seed']} · KDCI {'on' if row['kdci'] else 'off'} · {row['method']} · "
            f"{short_id(row['run_id'])}")


def default_selection(rows: list[dict]) -> list[str]:
    """The newest run of each (setting, seed) of the newest run's method and dataset."""
    if not rows:
        return []
    newest = rows[0]  # rows come newest first
    chosen: dict = {}
    for r in rows:
        if r["method"] == newest["method"] and r["dataset"] == newest["dataset"]:
            chosen.setdefault((bool(r["kdci"]), r["seed"]), r["run_id"])
    picked = set(chosen.values())
    return [r["run_id"] for r in rows if r["run_id"] in picked]


def linked_selection(options: list[str]) -> list[str] | None:
    """Run ids of a ``?runs=ID1,ID2`` deep link that are finished runs here (None: no link)."""
    text = st.query_params.get("runs")
    if not text:
        return None
    asked = [r.strip() for r in str(text).split(",") if r.strip()]
    unknown = [r for r in asked if r not in options]
    if unknown:
        st.warning("Left out of the link's selection (not finished runs of this store): "
                   + as_text(", ".join(unknown)))  # the link's words: text, never Markdown
    return [r for r in asked if r in options]


@st.cache_data(show_spinner=False, max_entries=16)
def cached_students(home: str, on_id: str, off_id: str, projection: str, dev: str):
    with progress_bar("Comparing the students…") as bar:  # drawn only when this runs
        sc = student_comparison(RunStore(home), on_id, off_id, method=projection, max_points=1000,
                                device=dev, progress=bar)
    return sc.figures(), sc.to_dict()


@st.cache_data(show_spinner=False, max_entries=8)
def cached_report(home: str, run_ids: tuple, include_students: bool, projection: str, dev: str,
                  field: str = "kdci") -> dict:
    with tempfile.TemporaryDirectory() as tmp, progress_bar("Building the report…") as bar:
        paths = export_report(RunStore(home), list(run_ids), Path(tmp) / "kdci-report.html",
                              include_students=include_students, projection=projection, device=dev,
                              field=field, progress=bar)
        return {p.suffix.lstrip("."): p.read_bytes() for p in paths}


def choose_runs(rows: list[dict]) -> list[str]:
    options = [r["run_id"] for r in rows]
    labels = {r["run_id"]: run_option_label(r) for r in rows}
    linked = linked_selection(options)
    default = linked if linked is not None else default_selection(rows)
    selected = st.multiselect("Finished runs", options, default=default, format_func=labels.get,
                              key="cmp_runs", help="Default: the newest method's runs, all seeds, KDCI on "
                                                   "and off. A link with ?runs=ID1,ID2 preselects runs.")
    if selected:
        st.query_params["runs"] = ",".join(selected)  # the address bar is a shareable deep link
    return selected


def compared_field(store: RunStore, selected: list[str]) -> str:
    """The config field to compare by: KDCI on/off, or any field the selected runs differ in."""
    configs = [canonical_config(store.get(i).config()) for i in selected]  # one folder, one value
    varying = sorted(k for k in set().union(*configs) - set(UNPAIRED_FIELDS)
                     if len({json.dumps(c.get(k), sort_keys=True, default=str) for c in configs}) > 1)
    options = ["kdci"] + [f for f in varying if f not in ("kdci", "method")]
    return st.selectbox("Compare by", options, key="cmp_field",
                        format_func=lambda f: "KDCI on vs off" if f == "kdci" else f,
                        help="Runs pair when they agree on every config field but this one and the "
                             "seed; the fields offered are the ones the selected runs differ in.")


def show_accuracy(comp) -> None:
    st.subheader("Final accuracy")
    cols = accuracy_columns(comp)
    st.dataframe([{k: r[k] for k in cols} for r in accuracy_table(comp)], hide_index=True)
    st.subheader(comp.title)
    if not comp.gains:
        st.info(comp.no_pairs_text() + " Add runs of both settings to see the paired gain.")
        return
    st.dataframe(gain_table(comp), hide_index=True)
    st.caption("Gain: setting − reference per seed (points), between runs alike in every other config "
               "field; p-value: paired t-test across seeds (at least 2 pairs); ratios: mean of the "
               "setting's runs over the reference's.")
    st.plotly_chart(gain_figure(comp))
    st.dataframe(pairs_table(comp), hide_index=True)


def show_predictions(comp) -> None:
    """Each collapsed student flagged, with its prediction histogram, and every run's most
    predicted class (runs of an older release have no histogram: not listed)."""
    rows = predictions_table(comp)
    if not rows:
        return
    collapsed = [r for r in comp.runs if r.collapsed]
    st.subheader("Students' predictions" + (f" · {len(collapsed)} collapsed" if collapsed else ""))
    for r in collapsed:
        st.error(f"{as_text(r.label)} ({r.run_id}): {collapse_text(r.predictions)}",
                 icon=":material/report:")
    st.dataframe(rows, hide_index=True, key="cmp_predictions")
    for r in collapsed:
        p = r.predictions
        with st.expander(f"Prediction histogram of {r.run_id}"):
            st.plotly_chart(predictions_figure(p["counts"], p["class_names"], threshold=COLLAPSE_SHARE,
                                               title=f"{r.label}: predicted classes"),
                            key=f"cmp_hist_{r.run_id}")


def show_sweep(comp) -> None:
    """The settings the chosen runs differ in against their final accuracy, one line per run."""
    fields, accuracies = sweep_fields(comp)
    if not fields or len(comp.runs) < 2:
        return
    st.subheader("Sweep")
    st.plotly_chart(parallel_figure(fields, accuracies), key="cmp_parallel")
    st.caption("One line per run, coloured by its final accuracy; drag along an axis to filter.")


def show_telemetry(comp) -> None:
    rows = telemetry_table(comp)
    if not rows:
        return
    st.subheader("Did KDCI act?")
    st.dataframe(rows, hide_index=True)
    st.caption("Last epoch of each KDCI-on run, on a fixed probe batch of test images. KDCI is "
               "inert when its compensation is under 2% of the logits' spread or one prototype takes "
               "at least 90% of the attention (docs/KDCI_IMPLEMENTATION.md).")
    for r in rows:
        if r["inert"] != "no":
            st.warning(f"KDCI is inert in {r['setting']} ({r['run']}): {r['inert']}", icon=":material/warning:")


def show_configs(comp) -> None:
    """Every compared run's settings: what they share, what tells them apart, and the command
    that makes each again (the report carries the same tables)."""
    shared, per_run = config_tables(comp)
    with st.expander(f"Run configurations: {len(shared)} settings shared, "
                     f"{max(0, len(per_run[0]) - 3) if per_run else 0} differ"):
        st.dataframe(per_run, hide_index=True, column_config={
            "command": st.column_config.TextColumn(help="python -m kdci_core distill ...: the run again")})
        st.dataframe(shared, hide_index=True)


@st.fragment
def show_curves(store: RunStore, comp) -> None:
    st.subheader("Training curves")
    c1, c2, c3 = st.columns(3)
    y = c1.radio("Metric", COMPARE_METRICS, format_func=Y_AXES.get, horizontal=True, key="cmp_y")
    x = c2.radio("x axis", list(X_AXES), format_func=lambda k: X_AXES[k][1], horizontal=True, key="cmp_x")
    smoothing = c3.slider("Smoothing (EMA)", 0.0, 0.99, 0.0, 0.01, key="cmp_smooth",
                          help="Exponential moving average, debiased, as in TensorBoard and W&B")
    series = [store.get(r.run_id).series() for r in comp.runs]
    st.plotly_chart(curves_figure(series, x=x, smoothing=smoothing, y=y))
    st.caption("Blues: KDCI on; oranges: KDCI off; one dash style per seed.")


@st.fragment
def show_students(store: RunStore, comp, dev: str) -> None:
    st.subheader("Students")
    pairs = comp.pairs()
    if not pairs:
        st.info("The student views need a KDCI-on and a KDCI-off run of the same method and seed.")
        return
    c1, c2 = st.columns([3, 2])
    i = c1.selectbox("On/off pair", range(len(pairs)), key="cmp_pair",
                     format_func=lambda j: f"{pairs[j].method} · seed {pairs[j].seed} · "
                                           f"{short_id(pairs[j].on_id)} vs {short_id(pairs[j].off_id)}")
    projection = c2.radio("Projection", STUDENT_PROJECTIONS, format_func=PROJECTION_NAMES.get, horizontal=True,
                          key="cmp_proj")
    pair = pairs[i]
    key = (pair.on_id, pair.off_id, projection)
    shown = st.session_state.setdefault("cmp_students_shown", set())
    if st.button("Compare the students", key="cmp_students_go", help="t-SNE/UMAP take a few seconds"):
        shown.add(key)
    if key not in shown:
        return
    try:
        figs, summary = cached_students(str(store.home), pair.on_id, pair.off_id, projection, dev)
    except InputError as exc:
        show_error(exc)
        return
    st.plotly_chart(figs["embedding"])
    st.plotly_chart(figs["per_class_delta"])
    st.caption(f"Corrected examples: {summary['fixed']} test images right with KDCI and wrong without "
               f"(fixed), {summary['broken']} the other way (broken); captions: true→predicted.")
    left, right = st.columns(2)
    left.plotly_chart(figs["fixed"], width="content")  # drawn at their pixel size: legible captions
    right.plotly_chart(figs["broken"], width="content")


@st.fragment
def show_report(store: RunStore, selected: list[str], dev: str, field: str = "kdci") -> None:
    st.subheader("Report")
    include = st.checkbox("Include the student views", True, key="cmp_report_students")
    projection = st.session_state.get("cmp_proj", "tsne")
    if st.button("Build the report", key="cmp_report_go",
                 help="One self-contained HTML file (opens offline), with JSON and Markdown"):
        try:
            files = cached_report(str(store.home), tuple(selected), include, projection, dev, field)
        except InputError as exc:
            show_error(exc)
            return
        st.session_state["cmp_report"] = {"ids": tuple(selected), "field": field, "files": files}
    built = st.session_state.get("cmp_report")
    if not built or built["ids"] != tuple(selected) or built.get("field") != field:
        return
    for col, (ext, name, mime) in zip(st.columns(len(DOWNLOADS)), DOWNLOADS):
        col.download_button(f"Download {name}", built["files"][ext], file_name=f"kdci-report.{ext}",
                            mime=mime, key=f"cmp_dl_{ext}")


def render() -> None:
    st.title("Compare runs")
    st.write("Finished runs side by side: does KDCI (or a correction, an ablation, a K) help this "
             "method, across seeds? Gains are paired by seed between runs alike in every other setting "
             "and tested with a paired t-test.")
    store = RunStore()
    rows = store.rows(status="finished")
    if not rows:
        st.info("No finished runs yet. Launch runs on the Runs page (KDCI on and off, a few seeds), "
                "then come back here to compare them.")
        return
    selected = choose_runs(rows)
    if not selected:
        st.info("Pick at least one finished run.")
        return
    field = compared_field(store, selected)
    try:
        comp = compare_runs(store, selected, field)
    except InputError as exc:
        show_error(exc)
        return
    for note in comp.notes:
        if not note.startswith("KDCI is inert") and "the student is collapsed" not in note:  # shown below
            st.caption(f"Note: {as_text(note)}")  # it may quote config values
    dev = str(device())
    show_accuracy(comp)
    show_predictions(comp)
    show_sweep(comp)
    show_telemetry(comp)
    show_configs(comp)
    show_curves(store, comp)
    show_students(store, comp, dev)
    show_report(store, selected, dev, field)


render()
