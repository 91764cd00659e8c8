"""The Runs page's run table: filters, a selection that survives the live refresh and a browser
refresh, tags and notes, collapsed students flagged, and the table grouped by any config fields
(never mixing teachers, datasets or schedules: ``kdci_core.runs.table.groups``).

Why a data editor with a "select" column rather than the dataframe's own row selection: the
dataframe's selection belongs to its data, so every refresh that changes a cell (a step counter,
an ETA) cleared it, and with it the Cancel and Resume buttons (a click was lost that way). Here
the selection is ours: kept in the session and in the run store's dashboard state (like the
teacher and the device, so a browser refresh, a new tab or a server restart finds it), drawn
into the table at every refresh, and changed only by the user's ticks. Not in the address bar:
address-bar changes made during a fragment's refresh were seen not to reach the browser.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app.shared import as_text, remember, remembered
from kdci_core.common.errors import InputError
from kdci_core.runs import LISTED, RunStore
from kdci_core.runs.table import ALWAYS_APART, DEFAULT_GROUP_BY, format_seconds, group_fields, groups, table_rows

PICKED = "runs_picked"
EDITOR = "runs_table"
SHOWN = "runs_table_shown"  # the run ids of the rows as drawn, to map the editor's row numbers


def picked() -> list[str]:
    """The selected run ids: this session's, else the ones this dashboard kept (a refreshed
    browser, a new tab, a restarted server)."""
    if PICKED not in st.session_state:
        st.session_state[PICKED] = list(remembered(PICKED) or [])
    return list(st.session_state[PICKED])


def set_picked(ids: list[str]) -> None:
    ids = list(dict.fromkeys(ids))
    st.session_state[PICKED] = ids
    remember(PICKED, ids)


def apply_edits(current: list[str], shown: list[str], edited_rows: dict, store: RunStore) -> list[str]:
    """The selection after the editor's ``edited_rows`` ({row number: {column: value}}) of the
    rows ``shown``; tag and note edits are written to the runs' annotations."""
    chosen = list(current)
    for i, change in edited_rows.items():
        i = int(i)
        if i >= len(shown):
            continue
        run_id = shown[i]
        if "select" in change:
            chosen = [r for r in chosen if r != run_id] + ([run_id] if change["select"] else [])
        if "tags" in change or "notes" in change:
            try:
                tags = [t for t in str(change["tags"] or "").split(",")] if "tags" in change else None
                store.get(run_id).annotate(tags=tags, notes=change.get("notes"))
            except InputError as exc:
                st.toast(as_text(exc))  # may quote what was typed
    return chosen


def _on_edit() -> None:
    state = st.session_state.get(EDITOR) or {}
    set_picked(apply_edits(picked(), st.session_state.get(SHOWN, []), state.get("edited_rows", {}),
                           RunStore()))


def number(value, spec: str) -> str:
    """A number as the table shows it; blank, never "None", when there is none (a queued run's
    accuracy). Right-aligned to 7 characters, so the text column still sorts by value."""
    return "" if value is None else format(value, spec).rjust(7)


def accuracy(row: dict) -> str:
    """The accuracy cell, flagged when the student collapsed onto one class (its share and name):
    the flag qualifies the number it sits beside, and takes no column of its own (a column pushed
    the teacher out of sight). The number comes first, so the column still sorts by it."""
    text = number(row["accuracy"], ".2f")
    if row.get("collapsed"):
        text += f"  ⚠ collapsed: {100 * row['top_share']:.0f}% {row['top_class']}"
    return text


def frame(rows: list[dict], chosen: list[str]) -> pd.DataFrame:
    """The table as drawn (text columns for what mixes numbers and blanks)."""
    return pd.DataFrame([{
        "select": r["run"] in chosen, "run": r["run"], "status": r["status"],
        "queue": f"#{r['queue']}" if r["queue"] else "",
        # progress and result first: what a user watches, visible without scrolling sideways
        "step": f"{r['step']}/{r['total_steps']}" if r["total_steps"] else str(r["step"]),
        "epoch": f"{r['epoch']}/{r['epochs']}", "accuracy %": accuracy(r),
        "ETA": format_seconds(r["eta_s"]), "method": r["method"] or "", "setting": r["setting"],
        "seed": "" if r["seed"] is None else str(r["seed"]), "K": r["K"], "teacher": r["teacher"],
        "lr": number(r["lr"], ".4g"),
        "duration": format_seconds(r["duration_s"]), "tags": ", ".join(r["tags"]), "notes": r["notes"],
        "dataset": r["dataset"] or "", "backend": r["backend"] or "",
        "created": pd.to_datetime(r["created_at"], unit="s") if r["created_at"] else None,
        "error": r["error"]} for r in rows])


def filters(rows: list[dict]) -> list[dict]:
    c1, c2, c3, c4 = st.columns([2, 2, 2, 3])
    statuses = c1.multiselect("Status", list(LISTED), key="runs_filter_status")
    methods = c2.multiselect("Method", sorted({r["method"] for r in rows if r["method"]}),
                             key="runs_filter_method")
    tags = c3.multiselect("Tag", sorted({t for r in rows for t in r["tags"]}), key="runs_filter_tag")
    text = c4.text_input("Search id, tags, notes", key="runs_filter_text")
    return [r for r in rows
            if (not statuses or r["status"] in statuses) and (not methods or r["method"] in methods)
            and (not tags or set(tags) & set(r["tags"]))
            and (not text or text in r["run"] or text in r["notes"] or any(text in t for t in r["tags"]))]


def show_groups(rows: list[dict]) -> None:
    """The shown rows grouped by the chosen fields; teacher, dataset and schedule always apart."""
    c1, c2 = st.columns([1, 4], vertical_alignment="bottom")
    if not c1.toggle("Group runs", key="runs_grouped"):
        return
    options = group_fields(rows)
    by = c2.multiselect("Group by", options, default=[f for f in DEFAULT_GROUP_BY if f in options] or None,
                        key="runs_group_by", help="any config fields, one or several; runs of different "
                        f"{', '.join(ALWAYS_APART)} are never grouped together (shown in each row)")
    table = groups(rows, by)
    for g in table:
        g["mean accuracy"], g["std"] = number(g["mean accuracy"], ".2f"), number(g["std"], ".2f")
        g["collapsed"] = str(g["collapsed"] or "")
    st.dataframe(pd.DataFrame(table), hide_index=True, key="runs_groups")


def show(store: RunStore) -> list[str]:
    """The filtered run table (and its groups); returns the selected run ids that still exist."""
    rows = table_rows(store)
    if not rows:
        st.info("No runs yet: launch some above.")
        return []
    existing = {r["run"] for r in rows}
    chosen = [i for i in picked() if i in existing]
    shown = filters(rows)
    show_groups(shown)
    st.session_state[SHOWN] = [r["run"] for r in shown]
    df = frame(shown, chosen)
    editable = {"select", "tags", "notes"}
    st.data_editor(df, hide_index=True, key=EDITOR, on_change=_on_edit,
                   disabled=[c for c in df.columns if c not in editable], column_config={
                       "select": st.column_config.CheckboxColumn("✓", help="select for cancel, resume, "
                                                                 "delete and the curves below", width="small",
                                                                 pinned=True),
                       "run": st.column_config.TextColumn(width=270, pinned=True),  # a whole id, no more
                       # wide enough for a flag when one is shown (a column's own width is
                       # measured on its first rows: "10.00 ⚠ col..." was cut)
                       "accuracy %": st.column_config.TextColumn(
                           width="medium" if any(r.get("collapsed") for r in shown) else None,
                           help="the student's test accuracy; ⚠ collapsed: it predicts one class for "
                                "over 80% of the test images"),
                       "tags": st.column_config.TextColumn(help="comma-separated; edit to tag the run"),
                       "notes": st.column_config.TextColumn(help="free text; edit to annotate the run")})
    c1, c2, c3 = st.columns([1, 1, 4], vertical_alignment="center")
    c1.button("Select all shown", key="runs_select_all", disabled=not shown,
              on_click=lambda: set_picked(chosen + [r["run"] for r in shown]))
    c2.button("Clear selection", key="runs_select_none", disabled=not chosen, on_click=lambda: set_picked([]))
    hidden = len(set(chosen) - {r["run"] for r in shown})
    c3.caption(f"{len(chosen)} selected" + (f" ({hidden} hidden by the filters)" if hidden else ""))
    return chosen
