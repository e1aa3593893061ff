"""Records that yielded no pair, kept with the reason so nothing is lost."""

from __future__ import annotations

import duckdb
import pyarrow as pa

RAW_LIMIT = 64 * 1024  # bytes of raw text kept per reject


def insert(
    con: duckdb.DuckDBPyConnection,
    job_id: int,
    file_id: int,
    file: str,
    lines: list[int],
    reasons: list[str],
    raws: list[str],
) -> None:
    if not lines:
        return
    batch = pa.table({"line": pa.array(lines, pa.int64()), "reason": reasons, "raw": raws})
    con.register("reject_batch", batch)
    try:
        con.execute("INSERT INTO rejects SELECT ?, ?, ?, line, reason, raw FROM reject_batch", [job_id, file_id, file])
    finally:
        con.unregister("reject_batch")


def listing(con: duckdb.DuckDBPyConnection, job_id: int | None = None, limit: int | None = None) -> list[dict]:
    sql = "SELECT job_id AS job, file, line, reason, raw FROM rejects"
    params: list = []
    if job_id is not None:
        sql += " WHERE job_id = ?"
        params.append(job_id)
    sql += " ORDER BY job_id, file_id, line"
    if limit is not None:
        sql += " LIMIT ?"
        params.append(limit)
    cursor = con.execute(sql, params)
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
