"""The web app's server: Streamlit (app.py's pages) plus the routes the map component fetches.

`curator app` runs `streamlit run ui/server.py`; Streamlit finds `app` below and serves it with
uvicorn. The routes answer on the app's own address, so the map works wherever the app does:

- /curator/blob/DIGEST: bytes published by ui.map_component (positions, colour codes,
  bitmasks), named by their content digest, hence cacheable for good by the browser;
- /curator/pair/DIGEST/INDEX: the start of one pair's prompt and response, for the map's hover.
"""

from __future__ import annotations

from pathlib import Path

import streamlit as st
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from storage import browse

APP_SCRIPT = Path(__file__).resolve().parents[1] / "app.py"
HOVER_CHARS = 240


# The ui modules are imported by the routes, when they are first called: this module is loaded
# before Streamlit's runtime starts, and cached functions defined then log "No runtime found".


def blob(request) -> Response:
    from ui import map_component

    data = map_component.BLOBS.get(request.path_params["digest"])
    if data is None:
        return Response("gone: rerun the page for fresh map data", status_code=404)
    # Content-Encoding set here keeps Streamlit's gzip layer off: float32 positions hardly
    # compress, and gzip -9 on 8 MB costs more than sending them over loopback.
    return Response(
        data,
        media_type="application/octet-stream",
        headers={"Cache-Control": "private, max-age=31536000, immutable", "Content-Encoding": "identity"},
    )


def pair(request) -> Response:
    from ui import map_component, state

    layout = map_component.layout_of(request.path_params["digest"])
    index = request.path_params["index"]
    if layout is None or not 0 <= index < len(layout.ids):
        return JSONResponse(None, status_code=404)
    preview = state.read_with(state.db_path(), browse.pair_preview, int(layout.ids[index]), layout.map_id, HOVER_CHARS)
    return JSONResponse(preview, status_code=200 if preview else 404)


app = st.App(
    str(APP_SCRIPT),
    routes=[
        Route("/curator/blob/{digest}", blob),
        Route("/curator/pair/{digest}/{index:int}", pair),
    ],
)
