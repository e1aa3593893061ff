"""Versions page: create and list versions; the map of each version as small multiples; the
latest `curator compare` results (the table and chart each one recorded)."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

from jobs import operations
from storage import compare, versions
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
    comparisons = compare.finished(con)
st.dataframe(rows, hide_index=True)

maps = state.maps()
if rows and maps:
    default_map = next((m for m in maps if m.is_default), maps[0])
    frame = state.map_frame(default_map.id)
    st.subheader(f"Each version on the {default_map.name} map (pairs outside it in grey)")
    per_row = 3
    for start in range(0, len(rows), per_row):
        for column, row in zip(st.columns(per_row), rows[start : start + per_row]):
            with column:
                st.caption(f"{row['name']} · {row['pairs']:,} pairs")
                outside = ~state.on_map(frame["id"].to_numpy(), members[row["name"]])
                mapview.chart(
                    default_map,
                    frame,
                    "source",
                    key=f"version-{row['name']}",
                    height=320,
                    dim=outside,
                    dim_label="not in this version",
                )

st.subheader("Comparisons")
if not comparisons:
    st.info(
        "No comparison yet. Does a curated version train a better model than the raw one? "
        "`curator compare @all VERSION --same-size` trains the same LoRA recipe on each and scores them."
    )
for job in comparisons:
    params, counts = job["params"], job["counts"]
    names = counts["set_names"]
    st.markdown(
        f"**{params['a']} vs {params['b']}** · {params['steps']} steps each · job {job['id']}, "
        f"{job['finished_at']:%Y-%m-%d %H:%M} · `{params['out']}`"
    )
    st.dataframe(
        [
            {
                "model": r["model"],
                "training pairs": r["pairs"],
                "steps": r["steps"],
                "tokens seen": r["tokens"],
                f"{names['eval']} ppl": round(r["eval_ppl"], 3),
                "gain": f"{r['eval_gain']:+.1%}",
                f"{names['heldout']} ppl": round(r["heldout_ppl"], 3),
                "gain ": f"{r['heldout_gain']:+.1%}",
            }
            for r in counts["rows"]
        ],
        hide_index=True,
    )
    for line in counts["verdicts"]:
        st.caption(line)
    if Path(counts["chart"]).is_file():
        st.image(counts["chart"])
