"""Quality runs (IFD, LLM judge) and their per-pair IFD scores.

A quality run is identified by what decides its scores (kind, model, settings; the judge's
rubric too): running the same command again finds the same run and scores only the pairs it
has not scored yet, which is both how a killed job resumes and how pairs ingested later get
their scores. pairs_view shows the latest run of each kind.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa

from curator.errors import UserError


def ensure_run(
    con: duckdb.DuckDBPyConnection,
    kind: str,
    identity: str,
    model: str,
    params: dict,
    job_id: int,
    base_url: str | None = None,
    local: bool | None = None,
) -> tuple[int, bool]:
    """(run id, whether it existed): the run with this identity, now on `job_id`."""
    row = con.execute("SELECT id FROM quality_runs WHERE identity = ?", [identity]).fetchone()
    if row:
        con.execute(
            "UPDATE quality_runs SET job_id = ?, base_url = coalesce(?, base_url), "
            "local = coalesce(?, local), updated_at = now() WHERE id = ?",
            [job_id, base_url, local, row[0]],
        )
        return row[0], True
    run_id = con.execute(
        "INSERT INTO quality_runs (kind, identity, model, params, base_url, local, job_id, updated_at) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, now()) RETURNING id",
        [kind, identity, model, json.dumps(params, sort_keys=True), base_url, local, job_id],
    ).fetchone()[0]
    return run_id, False


def runs(con: duckdb.DuckDBPyConnection, kind: str | None = None) -> list[dict]:
    """Quality runs, newest first."""
    cursor = con.execute(
        "SELECT id, kind, model, params, base_url, local, job_id, created_at, updated_at FROM quality_runs "
        "WHERE ? IS NULL OR kind = ? ORDER BY id DESC",
        [kind, kind],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) | {"params": json.loads(row[3])} for row in cursor.fetchall()]


def live_pair_ids(con: duckdb.DuckDBPyConnection, run_id: int) -> np.ndarray:
    """Ids of the pairs not deleted that this IFD run has not scored, ascending."""
    return con.execute(
        "SELECT id FROM pairs WHERE deleted_op IS NULL AND id NOT IN "
        "(SELECT pair_id FROM pair_ifd WHERE run_id = ?) ORDER BY id",
        [run_id],
    ).fetchnumpy()["id"]


def scored_count(con: duckdb.DuckDBPyConnection, run_id: int) -> int:
    return con.execute("SELECT count(*) FROM pair_ifd WHERE run_id = ?", [run_id]).fetchone()[0]


def texts(con: duckdb.DuckDBPyConnection, pair_ids: np.ndarray) -> tuple[list[str], list[str]]:
    """(prompts, responses) of these pairs, in the order given."""
    con.register(
        "wanted_ids",
        pa.table({"id": pa.array(pair_ids, pa.int64()), "k": pa.array(np.arange(len(pair_ids)), pa.int64())}),
    )
    try:
        rows = con.execute(
            "SELECT p.prompt, p.response FROM wanted_ids w JOIN pairs p USING (id) ORDER BY w.k"
        ).fetchall()
    finally:
        con.unregister("wanted_ids")
    if len(rows) != len(pair_ids):
        raise UserError(f"{len(pair_ids) - len(rows)} of the pairs to score are no longer in the database")
    return [r[0] for r in rows], [r[1] for r in rows]


def add_ifd(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    pair_ids: np.ndarray,
    tokens: list[int],
    loss_given_prompt: list[float | None],
    loss_alone: list[float | None],
    ifd: list[float | None],
) -> None:
    """Store a batch of IFD scores (inside the caller's transaction)."""
    con.register(
        "ifd_batch",
        pa.table(
            {
                "pair_id": pa.array(pair_ids, pa.int64()),
                "tokens": pa.array(tokens, pa.int32()),
                "loss_given_prompt": pa.array(loss_given_prompt, pa.float64()),
                "loss_alone": pa.array(loss_alone, pa.float64()),
                "ifd": pa.array(ifd, pa.float64()),
            }
        ),
    )
    try:
        con.execute(
            "INSERT INTO pair_ifd SELECT ?, pair_id, tokens, loss_given_prompt, loss_alone, ifd FROM ifd_batch",
            [run_id],
        )
    finally:
        con.unregister("ifd_batch")


def ifd_summary(con: duckdb.DuckDBPyConnection, run_id: int) -> list[dict]:
    """Per source: pairs scored, mean and median IFD, mean losses (largest sources first)."""
    cursor = con.execute(
        """
        SELECT p.source, count(*) AS pairs, avg(q.ifd) AS ifd_mean, median(q.ifd) AS ifd_median,
               avg(q.loss_given_prompt) AS loss_given_prompt, avg(q.loss_alone) AS loss_alone
        FROM pair_ifd q JOIN pairs p ON p.id = q.pair_id
        WHERE q.run_id = ? AND q.ifd IS NOT NULL
        GROUP BY ALL ORDER BY pairs DESC, p.source
        """,
        [run_id],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
