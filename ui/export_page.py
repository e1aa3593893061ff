"""Export page: pick a version, a format and a split; write the files and offer them."""

from __future__ import annotations

from pathlib import Path

import streamlit as st

import storage
from curator import training_set
from jobs import export
from storage import versions
from ui import state

with state.reading() as con:
    names = [row["name"] for row in versions.listing(con)]
version = st.selectbox("Version", ["(current kept pairs)", *names])
fmt = st.selectbox("Format", training_set.FORMATS)
val_fraction = st.slider("Validation fraction", 0.0, 0.5, export.ExportOptions.val_fraction, 0.01)
seed = st.number_input("Seed", value=export.ExportOptions.seed, step=1)
directory = st.text_input("Directory", value=str(Path(state.db_path()).resolve().parent / "export"))
if st.button("Export", type="primary"):
    options = export.ExportOptions(
        format=fmt, version=None if version.startswith("(") else version, val_fraction=val_fraction, seed=int(seed)
    )
    with state.database():
        pairs = export.export(storage.Database(state.db_path()), directory, options).manifest["pairs"]
    st.session_state["export_dir"] = directory
    st.success(
        f"wrote {pairs['train']:,} training pairs and {pairs['val']:,} validation pairs to {directory}"
        f" ({pairs.get('removed_by_eval_check') or 0:,} removed by the evaluation-set check)"
    )
if "export_dir" in st.session_state:
    folder = Path(st.session_state["export_dir"])
    for name in ("train.jsonl", "val.jsonl", "manifest.json"):
        if (folder / name).exists():
            st.download_button(f"Download {name}", (folder / name).read_bytes(), file_name=name, key=f"dl-{name}")
