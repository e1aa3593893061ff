"""Search page: keyword and semantic search; hits become the selection, highlighted on the map."""

from __future__ import annotations

import streamlit as st

from storage import browse
from ui import mapview, selection_panel, state

MAX_HITS = 10_000

mode = st.radio("Search", ["keyword", "semantic"], horizontal=True)
text = st.text_input("Text", key="search_text")
top = st.number_input("Top hits (semantic)", 1, MAX_HITS, 50) if mode == "semantic" else MAX_HITS
if st.button("Search", disabled=not text):
    if mode == "keyword":
        with state.reading() as con:
            ids = browse.keyword_hits(con, text, MAX_HITS)
        state.select({"ids": ids}, f"keyword “{text}”")
    else:
        state.select({"similar_to": text, "top": int(top)}, f"{top} nearest to “{text}”")

chosen = state.selection()
maps = state.maps()
if chosen is not None and maps:
    default_map = next((m for m in maps if m.is_default), maps[0])
    mapview.chart(default_map, state.map_frame(default_map.id), "topic", key="search_map", height=420)
selection_panel.show()
