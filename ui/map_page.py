"""Map page: the map coloured by any column, box/lasso selection over all points, twin view."""
from __future__ import annotations

import json

import numpy as np
import streamlit as st

from storage import browse
from ui import mapview, selection_panel, state

COLOR_CHOICES = ["source", "topic", *browse.SIGNAL_COLUMNS, "tag", "dup_group", "deleted", *browse.LOSS_COLUMNS]
COLOR_NAMES = {"loss_change": "loss_tuned - loss_base"}

maps = state.maps()
if not maps:
    st.info("No map yet: run `curator map` (or `make run` for the demo).")
    st.stop()

names = [m.name for m in maps]
default_index = next((i for i, m in enumerate(maps) if m.is_default), 0)
with st.sidebar:
    chosen_name = st.selectbox("Map", names, index=default_index)
    color_by = st.selectbox("Colour by", COLOR_CHOICES, format_func=lambda c: COLOR_NAMES.get(c, c))
    if color_by in browse.LOSS_COLUMNS:
        st.caption("Per-pair loss from the latest `curator score` run (the Train page's Score button), "
                   "in quintiles: q1 lowest. loss_tuned - loss_base below 0: what tuning learned.")
    twin = st.toggle("Twin view (prompt and response maps)", disabled=len(maps) < 2)
    twin_name = (st.selectbox("Second map", [n for n in names if n != chosen_name]) if twin else None)

chosen_map = next(m for m in maps if m.name == chosen_name)
frame = state.map_frame(chosen_map.id)
with st.sidebar:
    st.divider()
    st.caption("Filter: points outside it are greyed, not removed")
    sources = st.multiselect("Sources", sorted(frame["source"].unique()))
    signal = st.selectbox("Signal", ["(any)", *browse.SIGNAL_COLUMNS])
    hide_deleted = st.toggle("Grey out deleted pairs", value=True)


def _dim(points) -> np.ndarray:
    outside = np.zeros(len(points), dtype=bool)
    if sources:
        outside |= ~points["source"].isin(sources).to_numpy()
    if signal != "(any)":
        outside |= ~points[signal].fillna(False).astype(bool).to_numpy()
    if hide_deleted:
        outside |= points["deleted"].to_numpy(bool)
    return outside


def _selection_event(event, map_row) -> None:
    """A box or lasso on the drawn sample becomes a polygon applied to every point."""
    if event is None or not event.selection:
        return
    shapes = [("box", b) for b in event.selection.get("box", [])] + \
             [("lasso", l) for l in event.selection.get("lasso", [])]
    key = json.dumps([map_row.id, shapes], sort_keys=True, default=str)
    if not shapes or st.session_state.get("last_shape") == key:
        return
    st.session_state["last_shape"] = key
    kind, shape = shapes[-1]
    if kind == "box":
        (x0, x1), (y0, y1) = shape["x"], shape["y"]
        polygon = [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]
    else:
        polygon = [[float(x), float(y)] for x, y in zip(shape["x"], shape["y"])]
    state.select({"polygon": polygon, "map": map_row.name}, f"{kind} on map {map_row.name}", map_row.id)


def _chart(map_row, points, container) -> None:
    shown = mapview.drawn(points)
    chosen = state.selection()
    fig = mapview.figure(shown, color_by, highlight=chosen.ids if chosen else None, dim=_dim(shown),
                         labels=mapview.cluster_centres(points),
                         density_of=points if len(points) > len(shown) else None)
    with container:
        if len(points) > len(shown):
            st.caption(f"{len(shown):,} of {len(points):,} points drawn over a density layer; "
                       "selections apply to all points")
        event = st.plotly_chart(fig, key=f"map-{map_row.id}-{st.session_state.get('chart_generation', 0)}", on_select="rerun",
                                selection_mode=("box", "lasso"), config={"scrollZoom": True})
    _selection_event(event, map_row)


if twin_name:
    twin_map = next(m for m in maps if m.name == twin_name)
    left, right = st.columns(2)
    left.subheader(f"{chosen_map.name} map")
    right.subheader(f"{twin_map.name} map")
    _chart(chosen_map, frame, left)
    _chart(twin_map, state.map_frame(twin_map.id), right)
else:
    st.subheader(f"{chosen_map.name} map · {len(frame):,} points")
    _chart(chosen_map, frame, st.container())

selection_panel.show()
