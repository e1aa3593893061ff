"""Versions page: create and list versions; the map of each version as small multiples."""
from __future__ import annotations

import streamlit as st

from jobs import operations
from storage import versions
from ui import mapview, state

with st.form("new_version"):
    name = st.text_input("Version name", placeholder="v1.1-no-refusals")
    note = st.text_input("Note")
    if st.form_submit_button("Create version from the kept pairs", disabled=False) and name:
        with state.database():
            made = operations.create_version(state.db_path(), name, note or None)
        st.success(f"version {made['name']}: {made['pairs']:,} pairs")

with state.reading() as con:
    rows = versions.listing(con)
    members = {row["name"]: versions.pair_ids(con, row["name"]) for row in rows}
st.dataframe(rows, hide_index=True)

maps = state.maps()
if rows and maps:
    default_map = next((m for m in maps if m.is_default), maps[0])
    frame = state.map_frame(default_map.id)
    st.subheader(f"Each version on the {default_map.name} map (pairs outside it in grey)")
    per_row = 3
    for start in range(0, len(rows), per_row):
        for column, row in zip(st.columns(per_row), rows[start:start + per_row]):
            with column:
                st.caption(f"{row['name']} · {row['pairs']:,} pairs")
                outside = ~state.on_map(frame["id"].to_numpy(), members[row["name"]])
                mapview.chart(default_map, frame, "source", key=f"version-{row['name']}", height=320,
                              dim=outside, dim_label="not in this version")
