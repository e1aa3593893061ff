"""The curator web app's pages: `curator app`, or `streamlit run ui/server.py` (which serves
these pages with the map's data routes; database: $CURATOR_DB, else ./curator.duckdb).

Thin by design: each page in ui/ asks storage for data and jobs for work, and shows results.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="curator", layout="wide")
pages = [
    st.Page("ui/map_page.py", title="Map", default=True),
    st.Page("ui/clusters_page.py", title="Clusters"),
    st.Page("ui/search_page.py", title="Search"),
    st.Page("ui/versions_page.py", title="Versions"),
    st.Page("ui/export_page.py", title="Export"),
    st.Page("ui/train_page.py", title="Train"),
    st.Page("ui/chat_page.py", title="Chat"),
    st.Page("ui/jobs_page.py", title="Jobs"),
]
st.navigation(pages).run()
