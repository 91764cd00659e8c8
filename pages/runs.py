"""Runs page (ACCEPTANCE 4.4): launch one or many runs (methods x KDCI on/off x seeds) in
background workers, a run table with status from heartbeats (sort, filter), cancel and resume,
and a live monitor of accuracy and loss that refreshes itself without blocking the page.

Runs live in the run store and their own processes: closing the tab, refreshing the browser or
restarting the server loses nothing. Presentation only: ``kdci_core.runs`` does the work.
"""

from __future__ import annotations

import time

import streamlit as st

from app import launch_form as launch_form_view
from app import run_detail, run_table
from app.shared import teacher_caption, teacher_config
from kdci_core.common.errors import InputError
from kdci_core.figures.runs import curves_figure
from kdci_core.kdci import inert_reason
from kdci_core.runs import (ACTIVE, BACKENDS, CORRUPT, RESUMABLE, RunStore, cancel, default_concurrency,
                            get_backend, launch, reconcile, resume)

REFRESH_S = 2.0


@st.cache_resource
def backend_for(name: str, address: str, max_concurrent: int):
    """One backend per choice (Ray connects once per server process)."""
    return get_backend(name, RunStore(), ray_address=address or None, max_concurrent=max_concurrent)


def launch_form() -> None:
    cfg = teacher_config()
    opened = st.session_state.pop("runs_form_open", False) or not RunStore().rows(limit=1)
    with st.expander("Launch runs", expanded=opened):
        st.caption(teacher_caption(cfg))
        cfgs = launch_form_view.form(cfg)
        c1, c2, c3 = st.columns(3)
        backend = c1.radio("Backend", list(BACKENDS), horizontal=True, key="runs_backend",
                           help="local: one process per run on this machine; ray: a Ray cluster")
        address = c2.text_input("Ray address", key="runs_ray_address", disabled=backend != "ray",
                                placeholder="empty: $RAY_ADDRESS, else a Ray head on this machine")
        limit = int(c3.number_input("Runs at once (local)", 1, 64, default_concurrency(), key="runs_limit"))
        if cfgs:
            try:
                ids = launch(cfgs, backend_for(backend, address, limit))
            except InputError as exc:
                st.error(launch_form_view.form_error(exc))
            else:
                st.session_state["runs_selected"] = ids
                run_table.set_picked(ids)
                st.toast(f"Launched {len(ids)} run(s) on the {backend} backend")


def row_status(store: RunStore, run_id: str) -> str | None:
    """The run's status from its folder, ``corrupt`` when its status file is damaged."""
    try:
        return store.get(run_id).status().get("status")
    except InputError:
        return CORRUPT


def actions(store: RunStore, ids: list[str]) -> None:
    """Cancel, resume and delete the selected runs (each action on the runs it applies to)."""
    if not ids:
        return
    states = {i: row_status(store, i) for i in ids}
    active = [i for i, s in states.items() if s in ACTIVE]
    resumable = [i for i, s in states.items() if s in RESUMABLE]
    ended = [i for i, s in states.items() if s not in ACTIVE]
    c1, c2, c3, c4, _ = st.columns([1, 1, 1, 1, 2])
    if c1.button(f"Cancel ({len(active)})", key="runs_cancel", disabled=not active):
        for i in active:
            try:
                st.toast(f"{i}: {cancel(store, i)}")
            except InputError as exc:
                st.warning(str(exc))
    if c2.button(f"Resume ({len(resumable)})", key="runs_resume", disabled=not resumable,
                 help="each from its last checkpoint, on the backend it ran on"):
        for i in resumable:
            try:
                plan = resume(store, i, max_concurrent=int(st.session_state.get("runs_limit", default_concurrency())))
                st.toast(f"{i}: resumed; it {plan}")
            except InputError as exc:
                st.warning(str(exc))
    confirm = c3.checkbox(f"Confirm delete ({len(ended)})", key="runs_confirm_delete", disabled=not ended)
    if c4.button(f"Delete ({len(ended)})", key="runs_delete", disabled=not (ended and confirm),
                 help="removes the finished, failed or cancelled selected runs for good"):
        for i in ended:
            try:
                store.delete(i)
            except InputError as exc:
                st.warning(str(exc))
        run_table.set_picked([i for i in ids if i not in ended])
        st.toast(f"Deleted {len(ended)} run(s)")
        st.rerun()


@st.fragment(run_every=REFRESH_S)
def live(ids: list[str]) -> None:
    """Table and curves, re-read from the store every few seconds (only this part reruns)."""
    store = RunStore()
    reconcile(store)
    picked = run_table.show(store)
    actions(store, picked)
    shown = picked or ids or [r["run_id"] for r in store.rows(limit=6)]
    corrupt = {r["run_id"]: r["error"] for r in store.rows(status=CORRUPT)}
    for i in shown:
        if i in corrupt:
            st.warning(f"{i} is not monitored: {corrupt[i]}. Delete it, or repair the file by hand.")
    runs = [store.get(i) for i in shown if i not in corrupt and (store.runs_dir / i).exists()]
    if not runs:
        return
    if len(picked) == 1 and st.query_params.get("run") != picked[0]:
        if st.button(f"Open {picked[0]}'s details", key="runs_open_detail"):
            st.query_params["run"] = picked[0]  # a deep link to this run
            st.rerun()  # the whole page: the detail view sits above this fragment
    active = sum(r.status().get("status") in ACTIVE for r in runs)
    st.caption(f"Monitoring {len(runs)} run(s), {active} active; refreshed {time.strftime('%H:%M:%S')} "
               f"every {REFRESH_S:.0f} s.")
    left, right = st.columns(2)
    series = [r.series() for r in runs]
    left.plotly_chart(curves_figure(series, x="epoch", y="student_accuracy"), key="runs_acc")
    right.plotly_chart(curves_figure([r.series("step") for r in runs], x="step", y="loss"), key="runs_loss")
    show_telemetry(series)
    for r in runs:
        st_ = r.status()
        if st_.get("status") == "failed" and st_.get("error"):
            st.error(f"{r.run_id}: {st_['error']}")


def show_telemetry(series: list[dict]) -> None:
    """The newest epoch's KDCI telemetry of the monitored KDCI-on runs, and a flag when inert."""
    rows = []
    for s in series:
        last = next((h for h in reversed(s["history"]) if "kdci_compensation" in h), None)
        if last is None:
            continue
        reason = inert_reason(last)
        rows.append({"run": s["run_id"], "setting": s["label"], "epoch": last["epoch"],
                     "compensation / logit spread": round(last["kdci_compensation"], 4),
                     "attention entropy / log K'": round(last["kdci_attention_entropy"], 3),
                     "prototypes used": last["kdci_prototypes_used"],
                     "compensated acc. %": round(last["compensated_accuracy"], 2),
                     "inert": reason or "no"})
        if reason:
            st.warning(f"KDCI is inert in {s['label']} ({s['run_id']}): {reason}", icon=":material/warning:")
    if rows:
        st.dataframe(rows, hide_index=True, key="runs_telemetry")


def render() -> None:
    st.title("Runs")
    st.write("Launch distillations in background workers and watch them live. Runs keep going "
             "when you close the tab; come back any time.")
    launch_form()
    deep = st.query_params.get("run")
    if deep:
        try:
            active = RunStore().get(deep).status().get("status") in ACTIVE
        except InputError:
            active = False
        (detail_live if active else detail_static)(deep)
    ids = st.session_state.get("runs_selected", []) or ([deep] if deep else [])
    live(ids)


def detail(run_id: str) -> None:
    """The run detail view of ``?run=ID``."""
    with st.container(border=True):
        run_detail.show(RunStore(), run_id)


detail_live = st.fragment(run_every=REFRESH_S)(detail)  # refreshed like the monitor while active
detail_static = st.fragment(detail)


render()
