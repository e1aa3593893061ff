"""What every page shares: the database, cached map frames, and the current selection.

Reads open a read-only connection and close it at once, so a `curator` job in another process
can take the write lock between two reruns. Writes go through jobs.operations, which opens and
closes its own connection.
"""
from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

import storage
from jobs import operations
from storage import browse
from storage import maps as map_rows


def db_path() -> str:
    return str(storage.resolve_db_path())


@contextmanager
def reading():
    """A read-only connection for one block; stops the page with a clear message if none."""
    try:
        con = storage.connect_read_only(db_path())
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
    con = storage.connect_read_only(path)
    try:
        return browse.map_points(con, map_id)
    finally:
        con.close()


@st.cache_resource(max_entries=2, show_spinner=False)
def _marks(path: str, ops_token: int | None) -> tuple[np.ndarray, pd.DataFrame]:
    con = storage.connect_read_only(path)
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
    return points.assign(deleted=np.isin(ids, deleted, assume_unique=True), tag=tag)


def map_frame(map_id: int) -> pd.DataFrame:
    """Every point of the map with its colouring columns, `deleted` and first `tag` included.
    The map is re-read from the database only after a job; an operation re-reads only the
    deleted ids and tags."""
    with reading() as con:
        data_token, ops_token = browse.state_tokens(con)
    return _marked_frame(db_path(), map_id, data_token, ops_token)


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
    ids = operations.select(db_path(), selector)
    chosen = Selection(selector, ids, label, source_map)
    st.session_state["selection"] = chosen
    return chosen


def clear_selection() -> None:
    st.session_state.pop("selection", None)
