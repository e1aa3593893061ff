"""Map page: every point of a map coloured by any column, lasso / box / click selection over
all pairs, filters that grey points out, and the twin prompt / response view."""

from __future__ import annotations

import numpy as np
import streamlit as st

from storage import browse
from ui import mapview, selection_panel, state

COLOR_CHOICES = [
    "source",
    "topic",
    *browse.signal_columns(),
    "tag",
    "dup_group",
    "deleted",
    *browse.LOSS_COLUMNS,
    *browse.QUALITY_COLUMNS,
]
COLOR_NAMES = {"loss_change": "loss_tuned - loss_base"}
SCORE_NOTES = {
    "ifd": "Instruction-following difficulty (`curator quality ifd`): loss of the answer given its prompt over "
    "its loss alone. Low: the prompt all but dictates the answer (templates, copied spans).",
    "judge_score": "1-5 rating by an LLM judge (`curator quality judge`).",
}

snap = state.snapshot()
maps = snap.maps
if not maps:
    st.info("No map yet: run `curator map` (or `make run` for the demo).")
    st.stop()

names = [m.name for m in maps]
default_index = next((i for i, m in enumerate(maps) if m.is_default), 0)
with st.sidebar:
    chosen_name = st.selectbox("Map", names, index=default_index)
    chosen_map = next(m for m in maps if m.name == chosen_name)
    frame = state.map_frame(chosen_map.id, snap)
    concept_columns = [c for c in frame.columns if c.startswith("concept_")]
    color_by = st.selectbox("Colour by", COLOR_CHOICES + concept_columns, format_func=lambda c: COLOR_NAMES.get(c, c))
    if color_by in browse.LOSS_COLUMNS:
        st.caption(
            "Per-pair loss from the latest `curator score` run (the Train page's Score button), "
            "in quintiles: q1 lowest. loss_tuned - loss_base below 0: what tuning learned."
        )
    elif color_by in SCORE_NOTES:
        st.caption(SCORE_NOTES[color_by])
    elif color_by in concept_columns:
        st.caption(
            "Concept score (`curator concept`, or Find more like these): the classifier's probability "
            "that a pair belongs, in quintiles."
        )
    twin = st.toggle("Twin view (prompt and response maps)", disabled=len(maps) < 2)
    twin_name = st.selectbox("Second map", [n for n in names if n != chosen_name]) if twin else None

with st.sidebar:
    st.divider()
    st.caption("Filter: points outside it are greyed, not removed")
    sources = st.multiselect("Sources", sorted(frame["source"].unique()))
    signal = st.selectbox("Signal", ["(any)", *browse.signal_columns()])
    hide_deleted = st.toggle("Grey out deleted pairs", value=True)
    scored = [c for c in frame.columns if browse.is_score(c) or c == "judge_score"]
    score = st.selectbox("Score", ["(any)", *scored])
    score_range = None
    if score != "(any)" and frame[score].notna().any():
        low, high = float(frame[score].min()), float(frame[score].max())
        score_range = st.slider("Keep scores in", low, high, (low, high)) if high > low else None


def _dim(points) -> np.ndarray:
    outside = np.zeros(len(points), dtype=bool)
    if sources:
        outside |= ~points["source"].isin(sources).to_numpy()
    if signal != "(any)":
        outside |= ~points[signal].fillna(False).astype(bool).to_numpy()
    if hide_deleted:
        outside |= points["deleted"].to_numpy(bool)
    if score_range is not None and score in points:
        values = points[score].to_numpy(dtype=float, na_value=np.nan)
        outside |= ~((values >= score_range[0]) & (values <= score_range[1]))  # unscored: outside
    return outside


DIM_LABEL = "filtered out or deleted" if hide_deleted else "filtered out"
HELP = (
    "Drag to pan, scroll to zoom; Lasso or Box (or Shift + drag) selects every pair inside, "
    "a click selects one pair, a double click clears. Hover a point to read its pair."
)

shown = [(chosen_map, frame)]
if twin_name:
    twin_map = next(m for m in maps if m.name == twin_name)
    shown.append((twin_map, state.map_frame(twin_map.id, snap)))
slots = st.columns(len(shown))
st.caption(HELP)
# The last gesture on a map first (it may change the selection the panel shows), then the
# panel, then the maps into their slots above it: the browser fetches the map's new data once
# this script is done, not while it still holds the server's interpreter.
for map_row, points in shown:
    mapview.gesture(map_row, points, key=f"map-{map_row.id}")
selection_panel.show(snap)
for slot, (map_row, points) in zip(slots, shown):
    with slot:
        st.subheader(f"{map_row.name} map · {len(points):,} points")
        mapview.chart(
            map_row,
            points,
            color_by,
            key=f"map-{map_row.id}",
            height=640 if len(shown) == 1 else 560,
            dim=_dim(points),
            dim_label=DIM_LABEL,
        )
