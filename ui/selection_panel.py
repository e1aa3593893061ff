"""The selection panel: exact count, breakdowns, sample, full text, and the curation actions."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

import storage
from curator.errors import UserError
from curator.selection import Selector
from jobs import concepts as concept_job
from jobs import operations
from storage import browse
from ui import state

# Each rerun reads through a fresh connection, and sampled ids lie in different compressed
# blocks: at 1M pairs 200 rows took 0.4 s to read, 50 rows 0.17 s (bench/app.py's database).
SAMPLE_ROWS = 50
SAMPLE_ORDERS = ["id", "ifd", "judge_score", "loss_base", "loss_tuned"]


def show(snap: state.Snapshot | None = None) -> None:
    """The panel for the current selection; `snap`: the page's state.snapshot(), if it has one."""
    snap = snap or state.snapshot()
    chosen = state.selection()
    if chosen is None:
        st.caption("Select points on the map (box or lasso), a cluster, or search hits.")
        _log_and_undo(snap)
        return
    st.markdown(f"**{len(chosen.ids):,} {'pair' if len(chosen.ids) == 1 else 'pairs'} selected** · {chosen.label}")
    if len(chosen.ids):
        counts = state.breakdown(chosen, snap)
        columns = st.columns(3)
        for column, (name, rows) in zip(columns, counts.items()):
            column.dataframe(pd.DataFrame(rows, columns=[name, "pairs"]), hide_index=True, height=180)
        order_col, direction_col = st.columns([3, 1])
        order = order_col.selectbox(
            "Sample", SAMPLE_ORDERS, key="sample_order", format_func=lambda o: "first by id" if o == "id" else f"by {o}"
        )
        highest = direction_col.toggle("highest first", value=True, disabled=order == "id", key="sample_highest")
        with state.reading() as con:
            if order == "id":
                sample = browse.pairs_by_ids(con, chosen.ids, SAMPLE_ROWS)
            else:
                ranked = browse.ids_by_score(con, chosen.ids, order, SAMPLE_ROWS, highest)
                sample = browse.pairs_by_ids(con, ranked, SAMPLE_ROWS, keep_order=True)
        _sample(
            sample,
            len(chosen.ids),
            "first by id" if order == "id" else f"{'highest' if highest else 'lowest'} {order} first, unscored last",
        )
        _actions(chosen)
        _find_more(chosen)
    st.button("Clear selection", on_click=state.clear_selection)
    _log_and_undo(snap)


def _sample(sample: pd.DataFrame, total: int, order: str) -> None:
    st.caption(f"{len(sample):,} of {total:,}, {order}; pick a row to read it whole")
    # Ids as text: 63-bit ids lose digits as JavaScript numbers.
    shown = sample.assign(
        id=sample["id"].astype(str),
        prompt=sample["prompt"].str.slice(0, 120),
        response=sample["response"].str.slice(0, 120),
    )
    event = st.dataframe(shown, hide_index=True, on_select="rerun", selection_mode="single-row", key="selection_sample")
    rows = event.selection.rows if event is not None else []
    if rows or len(sample) == 1:  # one pair (a click on the map): open it at once
        pair = sample.iloc[rows[0] if rows else 0]
        st.markdown(f"**pair {pair['id']}** · {pair['source']} · {pair['topic']}")
        st.text_area("prompt", pair["prompt"], height=150, disabled=True)
        st.text_area("response", pair["response"], height=200, disabled=True)


def _actions(chosen: state.Selection) -> None:
    # Actions run as on_click callbacks: before the rerun the click starts, so the page is
    # drawn once, with the result, instead of once before the change and again after it.
    tag_col, delete_col, restore_col = st.columns(3)
    with tag_col:
        tag = st.text_input("Tag name", key="tag_name")
        st.button("Tag", disabled=not tag, on_click=_apply, args=("tag", chosen))
    with delete_col:
        st.text_input("Delete reason", key="delete_reason")
        st.button("Delete", type="primary", on_click=_apply, args=("delete", chosen))
    with restore_col:
        st.write("")
        st.button("Restore", on_click=_apply, args=("restore", chosen))


def _find_more(chosen: state.Selection) -> None:
    """A concept from the selection: a classifier over the map's embeddings, the selection as
    its positives against random other pairs; every pair gets a concept_NAME score."""
    with st.expander("Find more like these (a concept)"):
        st.text_input("Concept name (lower-case letters, digits, _)", key="concept_name")
        st.button(
            "Find more like these", on_click=_concept, args=(chosen,), disabled=not st.session_state.get("concept_name")
        )


def _concept(chosen: state.Selection) -> None:
    name = st.session_state.get("concept_name", "")
    try:
        with state.database():
            report = concept_job.create(storage.Database(state.db_path()), name, Selector(ids=chosen.ids))
    except UserError as err:
        st.session_state["last_error"] = str(err)
        return
    cv = (
        "not cross-validated (too few pairs)"
        if report.cv_precision is None
        else f"cross-validated precision {report.cv_precision:.0%}, recall {report.cv_recall:.0%}"
    )
    st.session_state["last_message"] = (
        f"concept {report.name}: {report.positives:,} positives, {cv}; "
        f"{report.members:,} pairs score >= {report.threshold:g}. "
        f"Colour the map by concept_{report.name}."
    )


def _apply(kind: str, chosen: state.Selection) -> None:
    # The inputs are read here, not bound when the buttons were drawn: text typed just before
    # the click arrives with the click.
    tag = st.session_state.get("tag_name") if kind == "tag" else None
    reason = (st.session_state.get("delete_reason") or None) if kind == "delete" else None
    with state.writing(f"Applying {kind}…"):
        op = operations.apply(state.db_path(), kind, chosen.selector, tag=tag, reason=reason)
        st.session_state["last_message"] = f"{kind}: {op.count:,} pairs changed (operation {op.id})"


def _undo() -> None:
    with state.writing("Undoing…"):
        op = operations.undo(state.db_path())
        st.session_state["last_message"] = f"undid operation {op.undoes}: {op.count:,} pairs restored to before"


def _log_and_undo(snap: state.Snapshot) -> None:
    message = st.session_state.pop("last_message", None)
    if message:
        st.success(message)
    error = st.session_state.pop("last_error", None)
    if error:
        st.error(error)
    st.button("Undo last operation", on_click=_undo)
    with st.expander("Operations log"):
        logged = state.operations_log(snap)
        entries = [{**entry, "selector": json.dumps(entry["selector"])} for entry in logged]
        st.dataframe(pd.DataFrame(entries), hide_index=True)
