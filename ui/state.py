"""What every page shares: the database, cached map frames, and the current selection.

Reads open a read-only connection and close it at once, so a `curator` job in another process
can write between two reruns; a read that meets a job's short write waits for it (READ_WAIT).
Writes go through jobs.operations, which opens and closes its own connection.

Every connection the app opens is opened under `database()`, one at a time in the process:
DuckDB refuses a read-only and a read-write connection to one file side by side in one
process, and the app serves every browser tab from threads of one process (a delete in one
tab while another tab loads the map failed before this).
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import streamlit as st

import storage
from curator.selection import Selector, points_in_polygon
from curator.selection import breakdown as selection_breakdown
from jobs import operations
from storage import browse
from storage import maps as map_rows
from ui.map_component import Layout

_DATABASE = threading.RLock()
UNTAGGED = "(untagged)"


def db_path() -> str:
    return str(storage.resolve_db_path())


@contextmanager
def database():
    """Hold this while a connection of the app's is open (see the module's docstring)."""
    with _DATABASE:
        yield


# Seconds a page waits for a job's write to end before saying the database is busy: jobs hold
# the file for moments (ingest for up to ~5 s), so this is only reached by one that holds it long.
READ_WAIT = 10.0


def _connect_read_only(path: str):
    return storage.connect_read_only(path, wait=READ_WAIT)


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


@contextmanager
def writing(what: str):
    """Around an operation the app applies (delete, tag, undo): it waits for a running job's
    short write to end (jobs.operations.OPERATION_WAIT), saying so while it waits; if the job
    holds the database longer, the operation is not applied and the page says to retry."""
    with _DATABASE, st.spinner(f"{what} (waits for a running job's write, if any, to end)", show_time=True):
        try:
            yield
        except storage.DatabaseLocked as err:
            st.session_state["last_error"] = f"{err} Nothing was changed: try again when it is done."


@dataclass(frozen=True)
class Snapshot:
    """What one rerun needs to know first, read through one connection: the maps, and the
    tokens that say whether cached map data is still current (storage.browse.state_tokens)."""

    maps: list
    data_token: tuple
    ops_token: int | None


def snapshot() -> Snapshot:
    with reading() as con:
        return Snapshot(map_rows.listing(con), *browse.state_tokens(con))


def maps() -> list:
    return snapshot().maps


def read_with(path: str, read, *args):
    """read(con, *args) through a read-only connection of its own, opened under the app's lock
    (for code outside a page's script, such as ui/server.py's routes, and for cached reads)."""
    with _DATABASE:
        con = _connect_read_only(path)
        try:
            return read(con, *args)
        finally:
            con.close()


# cache_resource, not cache_data: a million-row frame is handed out as is, not pickled and
# copied on every rerun. Callers treat the frames as read-only.
@st.cache_resource(max_entries=4, show_spinner="Loading the map…")
def _map_points(path: str, map_id: int, data_token: tuple) -> pd.DataFrame:
    return read_with(path, browse.map_points, map_id)


@st.cache_resource(max_entries=2, show_spinner=False)
def _marks(path: str, ops_token: int | None) -> tuple[np.ndarray, pd.DataFrame]:
    return read_with(path, browse.marks)


@st.cache_resource(max_entries=4, show_spinner=False)
def _marked_frame(path: str, map_id: int, data_token: tuple, ops_token: int | None) -> pd.DataFrame:
    return marked(_map_points(path, map_id, data_token), *_marks(path, ops_token))


def marked(points: pd.DataFrame, deleted: np.ndarray, tags: pd.DataFrame) -> pd.DataFrame:
    """The map's points (ordered by id) with what operations decided joined on: `deleted` and
    the first `tag` (UNTAGGED when none; tags of pairs not on the map are left out). The
    points' frame itself is left as it is (it is cached)."""
    ids = points["id"].to_numpy()
    at = np.searchsorted(ids, tags["id"].to_numpy())
    found = (at < len(ids)) & (ids[np.minimum(at, len(ids) - 1)] == tags["id"].to_numpy())
    # The first tag as a category: a million copies of "(untagged)" as Python strings cost
    # 0.1 s after every operation, codes a millisecond (bench/app.py, delete -> redrawn).
    names = tags["tag"].to_numpy()[found].astype(object)
    categories = np.unique(np.array([UNTAGGED, *names], dtype=object))
    codes = np.full(len(ids), np.searchsorted(categories, UNTAGGED), dtype=np.int32)
    codes[at[found]] = np.searchsorted(categories, names)
    frame = points.copy(deep=False)
    frame["deleted"] = on_map(ids, deleted)
    frame["tag"] = pd.Categorical.from_codes(codes, categories=categories)
    return frame


def map_frame(map_id: int, snap: Snapshot | None = None) -> pd.DataFrame:
    """Every point of the map with its colouring columns, `deleted` and first `tag` included,
    ordered by id. The map is re-read from the database only after a job; an operation
    re-reads only the deleted ids and tags. `frame.attrs["token"]` is (map id, data token,
    operations token): what map_layout and map_clusters take."""
    snap = snap or snapshot()
    frame = _marked_frame(db_path(), map_id, snap.data_token, snap.ops_token)
    frame.attrs["token"] = (map_id, snap.data_token, snap.ops_token)
    return frame


@st.cache_resource(max_entries=4, show_spinner=False)
def _layout(path: str, map_id: int, data_token: tuple) -> Layout:
    points = _map_points(path, map_id, data_token)
    return Layout.of(map_id, points["id"].to_numpy(), points["x"].to_numpy(), points["y"].to_numpy())


@st.cache_resource(max_entries=4, show_spinner=False)
def _clusters(path: str, map_id: int, data_token: tuple) -> list[dict]:
    return read_with(path, map_rows.cluster_listing, map_id)


def map_layout(token: tuple) -> Layout:
    """The map's positions as the browser draws them (ui.map_component), published once per
    job; `token` is a map frame's attrs["token"]."""
    map_id, data_token, _ = token
    return _layout(db_path(), map_id, data_token)


def map_clusters(token: tuple) -> list[dict]:
    """The map's fine and coarse clusters (storage.maps.cluster_listing), read once per job."""
    map_id, data_token, _ = token
    return _clusters(db_path(), map_id, data_token)


def breakdown(chosen: Selection, snap: Snapshot | None = None) -> dict[str, list[tuple]]:
    """Counts of the chosen pairs by source, topic (on the map they were chosen on, else the
    default map) and signal: curator.selection.breakdown, over the cached map frame when every
    chosen pair is on that map (a lasso over a million points: a tenth of a second instead of a
    join in DuckDB), else over the same columns read from the database."""
    snap = snap or snapshot()
    ids, map_id = chosen.ids, chosen.source_map
    if map_id is None:
        default = next((m for m in snap.maps if m.is_default), None)
        map_id = default.id if default else None
    if map_id is not None and len(ids):
        frame = map_frame(map_id, snap)
        mask = selected_mask(chosen, frame)
        if np.count_nonzero(mask) == len(ids):
            return selection_breakdown(frame, browse.signal_columns(), mask)
    with reading() as con:
        columns = browse.breakdown_columns(con, ids, map_id)
    return selection_breakdown(columns, browse.signal_columns())


@st.cache_data(max_entries=4, show_spinner=False)
def _operations_log(path: str, ops_token: int | None) -> list[dict]:
    with _DATABASE:
        return operations.log(path)


def operations_log(snap: Snapshot | None = None) -> list[dict]:
    """The operations log (jobs.operations.log), read again only after an operation."""
    return _operations_log(db_path(), (snap or snapshot()).ops_token)


def on_map(map_ids: np.ndarray, ids: np.ndarray) -> np.ndarray:
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
    masks: dict = field(default_factory=dict)  # (map id, data token) -> which points it holds


def selection() -> Selection | None:
    return st.session_state.get("selection")


def select(selector: dict, label: str, source_map: int | None = None) -> Selection:
    """Resolve a selector to ALL matching pairs (not just the drawn sample) and keep it."""
    with _DATABASE:
        ids = operations.select(db_path(), selector)
    chosen = Selection(selector, ids, label, source_map)
    st.session_state["selection"] = chosen
    return chosen


def select_polygon(map_row, frame: pd.DataFrame, polygon: list, shape: str) -> Selection:
    """A lasso or box drawn on the map: every point of the map inside it, found on the cached
    frame with the geometry the database-side selector uses (curator.selection), so the
    count shown is the count a delete of the same selector changes."""
    selector = Selector.from_dict({"polygon": polygon, "map": map_row.name})
    inside = points_in_polygon(frame["x"].to_numpy(), frame["y"].to_numpy(), selector.polygon)
    chosen = Selection(
        selector.describe(),
        frame["id"].to_numpy()[inside],
        f"{shape} on map {map_row.name}",
        map_row.id,
        masks={frame.attrs["token"][:2]: inside},
    )
    st.session_state["selection"] = chosen
    return chosen


def selected_mask(chosen: Selection, frame: pd.DataFrame) -> np.ndarray:
    """Which points of a map frame (ui.state.map_frame) the selection holds; computed once per
    selection and map, since the panel's breakdown and the map itself both ask each rerun."""
    key = frame.attrs["token"][:2]
    if key not in chosen.masks:
        chosen.masks[key] = on_map(frame["id"].to_numpy(), chosen.ids)
    return chosen.masks[key]


def clear_selection() -> None:
    st.session_state.pop("selection", None)
