"""Jobs page: the database at a glance, every job with its progress, rejected records."""
from __future__ import annotations

import streamlit as st

from storage import jobs as job_rows
from storage import pairs as pair_rows
from storage import rejects as reject_rows
from ui import state

with state.reading() as con:
    stats = pair_rows.stats(con)
    jobs = job_rows.listing(con, limit=50)
    rejects = reject_rows.listing(con, limit=200)

st.caption(f"database: {state.db_path()}")
pairs, deleted, rejected, duplicates = st.columns(4)
pairs.metric("pairs", f"{stats['pairs']:,}")
deleted.metric("deleted", f"{stats['deleted']:,}")
rejected.metric("rejected records", f"{stats['rejects']:,}")
duplicates.metric("exact duplicates", f"{stats['exact_duplicates']:,}")

st.subheader("Sources")
st.bar_chart({"pairs": stats["sources"]}, horizontal=True)

st.subheader("Jobs")
st.dataframe([{k: job[k] for k in ("id", "kind", "status", "progress", "message", "started_at", "counts", "error")}
              for job in jobs], hide_index=True,
             column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)})
if any(job["status"] == "running" for job in jobs) and st.button("Refresh"):
    st.rerun()

st.subheader(f"Rejected records (first {len(rejects)})")
st.dataframe(rejects, hide_index=True)
