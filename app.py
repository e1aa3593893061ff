"""The curator web app's pages: `curator app`, or `streamlit run ui/server.py` (which serves
these pages with the map's data routes; database: $CURATOR_DB, else ./curator.duckdb).

Thin by design: each page in ui/ asks storage for data and jobs for work, and shows results.
"""

from __future__ import annotations

import streamlit as st

st.set_page_config(page_title="curator", layout="wide")
# Addresses that read: /clusters, /search, ... The default page's address is / whatever its
# url_path (the map, until an overview page takes that place).
pages = [
    st.Page("ui/map_page.py", title="Map", default=True),
    st.Page("ui/clusters_page.py", title="Clusters", url_path="clusters"),
    st.Page("ui/search_page.py", title="Search", url_path="search"),
    st.Page("ui/versions_page.py", title="Versions", url_path="versions"),
    st.Page("ui/export_page.py", title="Export", url_path="export"),
    st.Page("ui/train_page.py", title="Train", url_path="train"),
    st.Page("ui/chat_page.py", title="Chat", url_path="chat"),
    st.Page("ui/jobs_page.py", title="Jobs", url_path="jobs"),
]
page = st.navigation(pages)
st.header(page.title)  # every page says what it is, above its own sections (subheaders)
page.run()
