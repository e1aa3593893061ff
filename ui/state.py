"""What every page shares: the database, cached map frames, and the current selection.

Reads open a read-only connection and close it at once, so a `curator` job in another process
can take the write lock between two reruns. Writes go through jobs.operations, which opens and
closes its own connection.

Every connection the app opens is opened under `database()`, one at a time in the process:
DuckDB refuses a read-only and a read-write connection to one file side by side in one
process, and the app serves every browser tab from threads of one process (a delete in one
tab while another tab loads the map failed before this).
"""
from __future__ import annotations

import threading
import time
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

import storage
from jobs import operations
from storage import browse
from storage import maps as map_rows


_DATABASE = threading.RLock()


def db_path() -> str:
    return str(storage.resolve_db_path())


@contextmanager
def database():
    """Hold this while a connection of the app's is open (see the module's docstring)."""
    with _DATABASE:
        yield


def _connect_read_only(path: str, wait: float = 3.0):
    """storage.connect_read_only, waiting up to `wait` seconds while another process writes:
    a CLI command's short write should not blank the page."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return storage.connect_read_only(path)
        except storage.DatabaseLocked:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


@contextmanager
def reading():
    """A read-only connection for one block; stops the page with a clear message if none."""
    with _DATABASE:
        try:
            con = _connect_read_only(db_path())
        except FileNotFoundError as err:
            st.info(f"{err}. `make run` builds the demo database.")
            st.stop()
        except storage.DatabaseLocked as err:
            st.warning(f"{err} The page will show the data when the job is done.")
            st.stop()
        try:
            yield con
        finally:
            con.close()


def maps() -> list:
    with reading() as con:
        return map_rows.listing(con)


# cache_resource, not cache_data: a million-row frame is handed out as is, not pickled and
# copied on every rerun. Callers treat the frames as read-only.
@st.cache_resource(max_entries=4, show_spinner="Loading the map…")
def _map_points(path: str, map_id: int, data_token: tuple) -> pd.DataFrame:
    with _DATABASE:
        con = _connect_read_only(path)
        try:
            return browse.map_points(con, map_id)
        finally:
            con.close()


@st.cache_resource(max_entries=2, show_spinner=False)
def _marks(path: str, ops_token: int | None) -> tuple[np.ndarray, pd.DataFrame]:
    with _DATABASE:
        con = _connect_read_only(path)
        try:
            return browse.marks(con)
        finally:
            con.close()


@st.cache_resource(max_entries=4, show_spinner=False)
def _marked_frame(path: str, map_id: int, data_token: tuple, ops_token: int | None) -> pd.DataFrame:
    points = _map_points(path, map_id, data_token)
    deleted, tags = _marks(path, ops_token)
    ids = points["id"].to_numpy()
    tag = np.full(len(ids), "(untagged)", dtype=object)
    at = np.searchsorted(ids, tags["id"].to_numpy())
    found = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == tags["id"].to_numpy())
    tag[at[found]] = tags["tag"].to_numpy()[found]
    return points.assign(deleted=_on_map(ids, deleted), tag=tag)


def map_frame(map_id: int) -> pd.DataFrame:
    """Every point of the map with its colouring columns, `deleted` and first `tag` included.
    The map is re-read from the database only after a job; an operation re-reads only the
    deleted ids and tags."""
    with reading() as con:
        data_token, ops_token = browse.state_tokens(con)
    return _marked_frame(db_path(), map_id, data_token, ops_token)


def breakdown(ids: np.ndarray, map_id: int | None) -> dict[str, list[tuple]]:
    """Counts of the chosen pairs by source, topic and signal, as browse.breakdown gives them.
    Counted on the cached map frame when every chosen pair is on that map (a lasso over a
    million points: a tenth of a second instead of a join in DuckDB), else in the database."""
    if map_id is None:
        default = next((m for m in maps() if m.is_default), None)
        map_id = default.id if default else None
    if map_id is not None and len(ids):
        frame = map_frame(map_id)
        chosen = frame[_on_map(frame["id"].to_numpy(), ids)]
        if len(chosen) == len(ids):
            out = {column: [(name, int(n)) for name, n in chosen[column].astype(str).value_counts()
                            .sort_index().sort_values(ascending=False, kind="stable").head(20).items()]
                   for column in ("source", "topic")}
            counts = [("deleted", int(chosen["deleted"].sum()))] + \
                     [(s, int(chosen[s].fillna(False).astype(bool).sum())) for s in browse.SIGNAL_COLUMNS]
            out["signal"] = [(name, n) for name, n in counts if n]
            return out
    with reading() as con:
        return browse.breakdown(con, ids)


def _on_map(map_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Mask of map_ids (sorted) that are in ids: a binary search, 20x np.isin at 1M rows."""
    at = np.searchsorted(map_ids, ids)
    found = at < len(map_ids)
    found[found] = map_ids[at[found]] == ids[found]
    mask = np.zeros(len(map_ids), dtype=bool)
    mask[at[found]] = True
    return mask


@dataclass
class Selection:
    """What the user picked: how (the selector, replayable) and which pairs (every one)."""
    selector: dict
    ids: np.ndarray
    label: str
    source_map: int | None = None
    extra: dict = field(default_factory=dict)


def selection() -> Selection | None:
    return st.session_state.get("selection")


def select(selector: dict, label: str, source_map: int | None = None) -> Selection:
    """Resolve a selector to ALL matching pairs (not just the drawn sample) and keep it."""
    with _DATABASE:
        ids = operations.select(db_path(), selector)
    chosen = Selection(selector, ids, label, source_map)
    st.session_state["selection"] = chosen
    return chosen


def clear_selection() -> None:
    st.session_state.pop("selection", None)
    # The chart keeps its box or lasso until it is drawn anew under another key; without
    # this, the same shape drawn again would look like the old event and be ignored.
    st.session_state.pop("last_shape", None)
    st.session_state["chart_generation"] = st.session_state.get("chart_generation", 0) + 1
