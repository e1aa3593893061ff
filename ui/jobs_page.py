"""Jobs page: start ingest, embed, map, signals and duplicates; watch them; the database at a
glance, every job with its progress, rejected records."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from storage import jobs as job_rows
from storage import pairs as pair_rows
from storage import rejects as reject_rows
from ui import background, state

FOLDER = Path(state.db_path()).resolve().parent
LOGS = FOLDER / "logs"
KINDS = ("ingest", "embed", "map", "signals", "duplicates")


def _ingest_paths() -> list[str]:
    """Paths typed in, one per line, and uploaded files (saved beside the database first)."""
    paths = [line.strip() for line in st.session_state.get("ingest_paths", "").splitlines() if line.strip()]
    for upload in st.session_state.get("ingest_uploads") or []:
        saved = FOLDER / "uploads" / Path(upload.name).name
        saved.parent.mkdir(parents=True, exist_ok=True)
        saved.write_bytes(upload.getvalue())
        paths.append(str(saved))
    return paths


with st.form("start_job"):
    st.subheader("Start a job")
    kind = st.selectbox("Job", KINDS)
    st.text_area("ingest: paths, one per line", key="ingest_paths")
    st.file_uploader("ingest: or upload files", accept_multiple_files=True, key="ingest_uploads")
    fast = st.toggle("embed / map: --fast (static embeddings, ~50x faster, rougher)")
    rebuild = st.toggle("map: --rebuild (fit again instead of placing new pairs)")
    if st.form_submit_button("Start", type="primary"):
        running = background.get(f"job:{kind}")
        if running is not None and running.running:
            st.warning(f"`curator {' '.join(running.args)}` is still running: wait for it to finish.")
        else:
            args = [kind]
            if kind == "ingest":
                args += _ingest_paths()
            args += ["--fast"] if fast and kind in ("embed", "map") else []
            args += ["--rebuild"] if rebuild and kind == "map" else []
            if kind == "ingest" and len(args) == 1:
                st.warning("Give at least one path or upload a file to ingest.")
            else:
                background.start(f"job:{kind}", args, LOGS / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}.log")


@st.fragment(run_every=2)
def _progress() -> None:
    """The jobs started here and every job's row, refreshed every 2 s on their own. A job
    holds the database only for short writes, so the rest of the app stays usable meanwhile."""
    for key in KINDS:
        child = background.get(f"job:{key}")
        if child is None:
            continue
        command = f"`curator {' '.join(child.args)}`"
        if child.running:
            st.info(f"{command} running: {child.last_line() or 'starting…'}")
        elif child.process.returncode == 0:
            st.success(f"{command} finished: {child.last_line()}")
        else:
            st.error(f"{command} failed (exit {child.process.returncode}): {child.last_line()}")
    with state.reading() as con:
        jobs = job_rows.listing(con, limit=50)
    st.subheader("Jobs")
    st.dataframe(
        [
            {k: job[k] for k in ("id", "kind", "status", "progress", "message", "started_at", "counts", "error")}
            for job in jobs
        ],
        hide_index=True,
        column_config={"progress": st.column_config.ProgressColumn(min_value=0, max_value=1)},
    )


with state.reading() as con:
    stats = pair_rows.stats(con)
    rejects = reject_rows.listing(con, limit=200)

st.caption(f"database: {state.db_path()}")
pairs, deleted, rejected, duplicates = st.columns(4)
pairs.metric("pairs", f"{stats['pairs']:,}")
deleted.metric("deleted", f"{stats['deleted']:,}")
rejected.metric("rejected records", f"{stats['rejects']:,}")
duplicates.metric("exact duplicates", f"{stats['exact_duplicates']:,}")

st.subheader("Sources")
st.bar_chart({"pairs": stats["sources"]}, horizontal=True)

_progress()

st.subheader(f"Rejected records (first {len(rejects)})")
st.dataframe(rejects, hide_index=True)
