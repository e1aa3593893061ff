"""The demo job: write the synthetic demo set (deterministic bytes) and ingest it."""
from __future__ import annotations

import os
from pathlib import Path

import duckdb
import orjson

from curator import demo
from jobs.ingest import IngestOptions, IngestReport, ingest
from jobs.runner import Progress, no_progress

DEMO_FILE = "curator-demo-synthetic-v1.jsonl"


def cache_dir() -> Path:
    return Path(os.environ.get("CURATOR_CACHE") or Path.home() / ".cache" / "curator")


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


def run(con: duckdb.DuckDBPyConnection, progress: Progress = no_progress) -> IngestReport:
    return ingest(con, [write_demo_file(cache_dir() / "demo")], IngestOptions(), progress)
