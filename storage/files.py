"""The ingested-files registry: content identity, options, and the resume checkpoint."""

from __future__ import annotations

import json
from dataclasses import dataclass

import duckdb


@dataclass
class FileRow:
    id: int
    sha256: str
    path: str
    options: dict
    format: str | None
    status: str
    job_id: int
    resume_line: int
    resume_offset: int
    pairs: int
    rejects: int
    duplicates: int | None


_COLUMNS = "id, sha256, path, options, format, status, job_id, resume_line, resume_offset, pairs, rejects, duplicates"


def find(con: duckdb.DuckDBPyConnection, sha256: str) -> FileRow | None:
    row = con.execute(f"SELECT {_COLUMNS} FROM files WHERE sha256 = ?", [sha256]).fetchone()
    if row is None:
        return None
    values = list(row)
    values[3] = json.loads(values[3])
    return FileRow(*values)


def start(
    con: duckdb.DuckDBPyConnection, sha256: str, path: str, size: int, options: dict, fmt: str | None, job_id: int
) -> FileRow:
    con.execute(
        "INSERT INTO files (sha256, path, size, options, format, status, job_id) "
        "VALUES (?, ?, ?, ?, ?, 'ingesting', ?)",
        [sha256, path, size, json.dumps(options, sort_keys=True), fmt, job_id],
    )
    return find(con, sha256)


def take_over(con: duckdb.DuckDBPyConnection, file_id: int, job_id: int, path: str) -> None:
    """A new job resumes a file an interrupted job left half-read."""
    con.execute("UPDATE files SET job_id = ?, path = ? WHERE id = ?", [job_id, path, file_id])


def checkpoint(
    con: duckdb.DuckDBPyConnection, file_id: int, fmt: str | None, line: int, offset: int, pairs: int, rejects: int
) -> None:
    """Called inside the transaction that commits a batch, so rows and checkpoint agree."""
    con.execute(
        "UPDATE files SET format = coalesce(format, ?), resume_line = ?, resume_offset = ?, "
        "pairs = pairs + ?, rejects = rejects + ? WHERE id = ?",
        [fmt, line, offset, pairs, rejects, file_id],
    )


def finish(con: duckdb.DuckDBPyConnection, file_id: int, duplicates: int) -> None:
    con.execute(
        "UPDATE files SET status = 'done', duplicates = ?, finished_at = now() WHERE id = ?",
        [duplicates, file_id],
    )
