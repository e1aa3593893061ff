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


@st.cache_data(max_entries=4, show_spinner="Loading the map…")
def _map_frame(path: str, map_id: int, token: tuple) -> pd.DataFrame:
    con = storage.connect_read_only(path)
    try:
        return browse.map_frame(con, map_id)
    finally:
        con.close()


def map_frame(map_id: int) -> pd.DataFrame:
    """Every point of the map with its colouring columns; re-read only after a change."""
    with reading() as con:
        token = browse.state_token(con)
    return _map_frame(db_path(), map_id, token)


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
