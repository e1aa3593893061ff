"""User SQL, run read-only."""

from __future__ import annotations

import duckdb


def run_read_only(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None
) -> tuple[list[str], list[tuple]]:
    """Run SQL on a connection from storage.connect_read_only; return column names and rows."""
    cursor = con.execute(sql, params or [])
    if cursor.description is None:
        return [], []
    return [d[0] for d in cursor.description], cursor.fetchall()
