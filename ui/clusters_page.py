"""Clusters page: the blob report (worst first), the cluster table, whole-cluster actions."""

from __future__ import annotations

import streamlit as st

import storage
from jobs import blobs
from storage import browse
from ui import mapview, selection_panel, state

maps = state.maps()
if not maps:
    st.info("No map yet: run `curator map` (or `make run` for the demo).")
    st.stop()
chosen_map = next((m for m in maps if m.is_default), maps[0])
if len(maps) > 1:
    chosen_map = next(m for m in maps if m.name == st.sidebar.selectbox("Map", [m.name for m in maps]))

st.subheader("Blob report: the most homogeneous and harmful clusters and sources first")
# The report computes the quality signals first when they are missing (short writes).
with state.database():
    report = blobs.blob_report(storage.Database(state.db_path()), map_name=chosen_map.name)
st.dataframe(
    [
        {
            "kind": r["kind"],
            "cluster or source": r.get("id", r.get("name")),
            "label": r["label"],
            "size": r["size"],
            "score": round(r["score"], 3),
            "fine parts": ", ".join(str(part["id"]) for part in r.get("parts", [])),
            "reasons": "; ".join(r["reasons"]),
            "mean IFD": r["metrics"]["ifd_mean"],
            "mean judge score": r["metrics"]["judge_mean"],
        }
        for r in report[:30]
    ],
    hide_index=True,
)

with state.reading() as con:
    table = browse.cluster_table(con, chosen_map.id)
st.subheader(f"Clusters of map {chosen_map.name}")
event = st.dataframe(
    table,
    hide_index=True,
    on_select="rerun",
    selection_mode="single-row",
    key="cluster_table",
    column_config={s: st.column_config.NumberColumn(format="percent") for s in browse.signal_columns()},
)
rows = event.selection.rows if event is not None else []
if rows:
    cluster = int(table.iloc[rows[0]]["cluster"])
    current = state.selection()
    if current is None or current.selector != {"cluster": cluster, "map": chosen_map.name}:
        state.select(
            {"cluster": cluster, "map": chosen_map.name},
            f"cluster {cluster}: {table.iloc[rows[0]]['label']}",
            chosen_map.id,
        )
    mapview.chart(chosen_map, state.map_frame(chosen_map.id), "topic", key="cluster_map", height=420)
selection_panel.show()
