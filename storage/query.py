"""User SQL, run read-only."""

from __future__ import annotations

import duckdb

from curator.errors import UserError


def run_read_only(
    con: duckdb.DuckDBPyConnection, sql: str, params: list | None = None
) -> tuple[list[str], list[tuple]]:
    """Run SQL on a connection from storage.connect_read_only; return column names and rows.
    An error in the SQL is the user's (UserError, with DuckDB's message)."""
    try:
        cursor = con.execute(sql, params or [])
    except duckdb.Error as err:
        raise UserError(str(err)) from None
    if cursor.description is None:
        return [], []
    return [d[0] for d in cursor.description], cursor.fetchall()
