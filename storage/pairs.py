"""Writing pairs, and the counts `curator stats` reports."""

from __future__ import annotations

import duckdb
import pyarrow as pa

# One INSERT per batch: ids and content hashes are computed by DuckDB, vectorized.
# id = 63 bits of md5(file sha256 : line : pair index), so a fresh ingest of the same files
# gives every pair the same id whatever order the files come in (replayable curation logs).
_INSERT = """
INSERT INTO pairs
SELECT (md5_number_lower($sha || ':' || line || ':' || pair_index) >> 1)::BIGINT,
       $file_id, line, pair_index, prompt, response, messages, source,
       md5_number_lower(prompt_norm),
       md5_number_lower(prompt_norm || chr(31) || normalize_text(response)),
       $job_id, now(), NULL, model, finish_reason
FROM (SELECT *, normalize_text(prompt) AS prompt_norm FROM pair_batch)
"""

_SCAN_CHUNK = 8192

BATCH_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("pair_index", pa.int32()),
        ("prompt", pa.string()),
        ("response", pa.string()),
        ("messages", pa.string()),
        ("source", pa.string()),
        ("model", pa.string()),  # the model that wrote the response, when known
        ("finish_reason", pa.string()),  # as the API reported it ("length": cut at max tokens)
    ]
)


def insert(con: duckdb.DuckDBPyConnection, file_sha: str, file_id: int, job_id: int, batch: pa.Table) -> None:
    if batch.num_rows == 0:
        return
    # Many small record batches let DuckDB scan (and hash) the batch on every core; one big
    # chunk is read by one thread. Slicing is zero-copy.
    con.register("pair_batch", pa.Table.from_batches(batch.to_batches(max_chunksize=_SCAN_CHUNK)))
    try:
        con.execute(_INSERT, {"sha": file_sha, "file_id": file_id, "job_id": job_id})
    finally:
        con.unregister("pair_batch")


def file_duplicates(con: duckdb.DuckDBPyConnection, file_id: int) -> int:
    """Pairs of this file whose normalized prompt + response was already present before them:
    repeats inside the file plus those also found in files ingested earlier."""
    return con.execute(
        """
        WITH here AS (SELECT pair_hash, count(*) AS n FROM pairs WHERE file_id = $f GROUP BY pair_hash),
             earlier AS (SELECT DISTINCT pair_hash FROM pairs WHERE file_id < $f)
        SELECT coalesce(sum(n - 1), 0)
             + (SELECT count(*) FROM here JOIN earlier USING (pair_hash))
        FROM here
        """,
        {"f": file_id},
    ).fetchone()[0]


def stats(con: duckdb.DuckDBPyConnection) -> dict:
    kept, deleted, exact_duplicates = con.execute(
        "SELECT count(*) FILTER (WHERE deleted_op IS NULL), count(*) FILTER (WHERE deleted_op IS NOT NULL), "
        "count(*) FILTER (WHERE deleted_op IS NULL) - count(DISTINCT pair_hash) FILTER (WHERE deleted_op IS NULL) "
        "FROM pairs"
    ).fetchone()
    sources = dict(
        con.execute(
            "SELECT source, count(*) FROM pairs WHERE deleted_op IS NULL GROUP BY source ORDER BY 2 DESC, 1"
        ).fetchall()
    )
    rejects = con.execute("SELECT count(*) FROM rejects").fetchone()[0]
    files = con.execute("SELECT count(*) FILTER (WHERE status = 'done'), count(*) FROM files").fetchone()
    return {
        "pairs": kept,
        "deleted": deleted,
        "rejects": rejects,
        "exact_duplicates": exact_duplicates,
        "files": files[0],
        "files_unfinished": files[1] - files[0],
        "sources": sources,
    }
