"""The demo job: write the synthetic demo set (deterministic bytes), ingest it, map it."""
from __future__ import annotations

from pathlib import Path

import duckdb
import orjson

from curator import demo
from curator.cache import cache_dir
from jobs.ingest import IngestOptions, IngestReport, ingest
from jobs.map import MapReport, build_map
from jobs.runner import Progress, no_progress

DEMO_FILE = "curator-demo-synthetic-v1.jsonl"


def write_demo_file(directory: Path) -> Path:
    """Write the demo set once; the same bytes every time, so re-ingesting it is a no-op."""
    path = directory / DEMO_FILE
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".partial")
        with open(partial, "wb") as out:
            for record in demo.records():
                out.write(orjson.dumps(record) + b"\n")
        partial.replace(path)
    return path


def run(con: duckdb.DuckDBPyConnection, db_path: str | Path, progress: Progress = no_progress
        ) -> tuple[IngestReport, MapReport]:
    """Ingest the demo set and build (or bring up to date) its prompt map."""
    report = ingest(con, [write_demo_file(cache_dir() / "demo")], IngestOptions(), progress)
    return report, build_map(con, db_path, progress=progress)
