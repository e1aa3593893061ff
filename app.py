"""The curator web app: `streamlit run app.py` (database: $CURATOR_DB, else ./curator.duckdb).

Thin by design: it asks storage for data and shows it. This first page is the overview of
the database (pairs, sources, jobs, rejects); the map, curation and export pages build on it.
"""
from __future__ import annotations

import streamlit as st

import storage
from storage import jobs as job_rows
from storage import pairs as pair_rows
from storage import rejects as reject_rows

st.set_page_config(page_title="curator", layout="wide")
st.title("curator")
db_path = storage.resolve_db_path()

try:
    con = storage.connect_read_only(db_path)
except FileNotFoundError as err:
    st.info(f"{err}. `make run` builds the demo database.")
    st.stop()
except storage.DatabaseLocked as err:
    st.error(str(err))
    st.stop()

try:
    stats = pair_rows.stats(con)
    jobs = job_rows.listing(con, limit=20)
    rejects = reject_rows.listing(con, limit=200)
finally:
    con.close()

st.caption(f"database: {db_path}")
pairs, deleted, rejected, duplicates = st.columns(4)
pairs.metric("pairs", f"{stats['pairs']:,}")
deleted.metric("deleted", f"{stats['deleted']:,}")
rejected.metric("rejected records", f"{stats['rejects']:,}")
duplicates.metric("exact duplicates", f"{stats['exact_duplicates']:,}")

st.subheader("Sources")
st.bar_chart({"pairs": stats["sources"]}, horizontal=True)

st.subheader("Jobs")
st.dataframe([{k: job[k] for k in ("id", "kind", "status", "progress", "started_at", "counts", "error")}
              for job in jobs], hide_index=True)

st.subheader(f"Rejected records (first {len(rejects)})")
st.dataframe(rejects, hide_index=True)
