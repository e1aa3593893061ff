"""Job rows: every long-running command records itself, its progress and its outcome."""

from __future__ import annotations

import json
import os
import socket

import duckdb


def create(con: duckdb.DuckDBPyConnection, kind: str, params: dict) -> int:
    return con.execute(
        "INSERT INTO jobs (kind, params, status, pid, host, updated_at) "
        "VALUES (?, ?, 'running', ?, ?, now()) RETURNING id",
        [kind, json.dumps(params, sort_keys=True), os.getpid(), socket.gethostname()],
    ).fetchone()[0]


def update(
    con: duckdb.DuckDBPyConnection, job_id: int, progress: float, message: str | None, counts: dict | None = None
) -> None:
    con.execute(
        "UPDATE jobs SET progress = ?, message = ?, counts = coalesce(?, counts), updated_at = now() WHERE id = ?",
        [progress, message, json.dumps(counts) if counts is not None else None, job_id],
    )


def finish(con: duckdb.DuckDBPyConnection, job_id: int, counts: dict, longest_hold_s: float | None = None) -> None:
    con.execute(
        "UPDATE jobs SET status = 'done', progress = 1, message = NULL, counts = ?, longest_hold_s = ?, "
        "updated_at = now(), finished_at = now() WHERE id = ?",
        [json.dumps(counts), longest_hold_s, job_id],
    )


def fail(
    con: duckdb.DuckDBPyConnection,
    job_id: int,
    error: str,
    counts: dict | None,
    longest_hold_s: float | None = None,
) -> None:
    con.execute(
        "UPDATE jobs SET status = 'failed', error = ?, counts = coalesce(?, counts), longest_hold_s = ?, "
        "updated_at = now(), finished_at = now() WHERE id = ?",
        [error, json.dumps(counts) if counts is not None else None, longest_hold_s, job_id],
    )


def _alive(pid: int | None, host: str | None) -> bool:
    if pid is None or host != socket.gethostname():
        return True  # cannot tell from here: trust the row
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def listing(con: duckdb.DuckDBPyConnection, limit: int = 50) -> list[dict]:
    """Newest first. A 'running' job whose process is gone (kill -9, crash) reads 'interrupted'."""
    cursor = con.execute(
        "SELECT id, kind, status, progress, message, params, counts, error, pid, host, "
        "started_at, finished_at, longest_hold_s FROM jobs ORDER BY id DESC LIMIT ?",
        [limit],
    )
    names = [d[0] for d in cursor.description]
    rows = []
    for values in cursor.fetchall():
        row = dict(zip(names, values))
        if row["status"] == "running" and not _alive(row["pid"], row["host"]):
            row["status"] = "interrupted"
        row["params"] = json.loads(row["params"])
        row["counts"] = json.loads(row["counts"]) if row["counts"] else None
        del row["host"]
        rows.append(row)
    return rows
