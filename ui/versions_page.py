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
    shown = mapview.drawn(state.map_frame(default_map.id))
    st.subheader(f"Each version on the {default_map.name} map")
    per_row = 3
    for start in range(0, len(rows), per_row):
        for column, row in zip(st.columns(per_row), rows[start:start + per_row]):
            kept = shown[shown["id"].isin(members[row["name"]])]
            fig = mapview.figure(kept, "source", height=300)
            fig.update_layout(showlegend=False, title={"text": f"{row['name']} · {row['pairs']:,}", "x": 0.02},
                              margin={"t": 32})
            column.plotly_chart(fig, key=f"version-{row['name']}")
