"""Judge runs' per-pair state and scores: what makes `curator quality judge` resumable.

A judge run is a quality_runs row (kind 'judge', identity = curator.judge.run_identity); each
pair it is to rate is a judge_scores row (pending -> done | failed). A verdict's score and its
row's `done` are one write, committed with the rest of its batch, so a pair is done exactly
when its score is stored.
"""

from __future__ import annotations

import duckdb
import pyarrow as pa

from curator.judge import PairText

RESULT_SCHEMA = pa.schema(
    [
        ("pair_id", pa.int64()),
        ("status", pa.string()),  # done | failed
        ("attempts", pa.int32()),  # requests sent for it in this run
        ("score", pa.int32()),
        ("reason", pa.string()),
        ("error", pa.string()),
        ("model", pa.string()),  # as answered
        ("prompt_tokens", pa.int64()),  # every completion received for it, rejected ones included
        ("completion_tokens", pa.int64()),
    ]
)


def queue(con: duckdb.DuckDBPyConnection, run_id: int) -> int:
    """Add the pairs (not deleted) that the run has no row for yet, as pending: the first run
    queues every pair, a later one the pairs ingested since. Returns how many were added."""
    return con.execute(
        """
        INSERT INTO judge_scores (run_id, pair_id, status)
        SELECT $run_id, p.id, 'pending' FROM pairs p
        WHERE p.deleted_op IS NULL
          AND NOT EXISTS (SELECT 1 FROM judge_scores j WHERE j.run_id = $run_id AND j.pair_id = p.id)
        ORDER BY p.id
        """,
        {"run_id": run_id},
    ).fetchone()[0]


def todo(con: duckdb.DuckDBPyConnection, run_id: int, after: int | None, limit: int) -> list[PairText]:
    """The next pairs (not deleted) still to judge (pending, or failed in an earlier run), by id."""
    rows = con.execute(
        "SELECT p.id, p.prompt, p.response FROM judge_scores j JOIN pairs p ON p.id = j.pair_id "
        "WHERE j.run_id = ? AND j.status <> 'done' AND p.deleted_op IS NULL AND (? IS NULL OR j.pair_id > ?) "
        "ORDER BY j.pair_id LIMIT ?",
        [run_id, after, after, limit],
    ).fetchall()
    return [PairText(*row) for row in rows]


def counts(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[str, int]:
    """pending, done and failed among the run's pairs that are not deleted."""
    row = con.execute(
        "SELECT count(*) FILTER (WHERE j.status = 'pending'), count(*) FILTER (WHERE j.status = 'done'), "
        "count(*) FILTER (WHERE j.status = 'failed') FROM judge_scores j JOIN pairs p ON p.id = j.pair_id "
        "WHERE j.run_id = ? AND p.deleted_op IS NULL",
        [run_id],
    ).fetchone()
    return dict(zip(("pending", "done", "failed"), row))


def record(con: duckdb.DuckDBPyConnection, run_id: int, results: pa.Table) -> None:
    """Each pair's outcome (inside the caller's transaction). Attempts and tokens add up over
    reruns: a failed pair asked again has spent both twice."""
    if results.num_rows == 0:
        return
    con.register("judge_batch", results)
    try:
        con.execute(
            """
            UPDATE judge_scores AS j
            SET status = r.status, attempts = j.attempts + r.attempts, score = r.score, reason = r.reason,
                error = r.error, model = coalesce(r.model, j.model),
                prompt_tokens = coalesce(j.prompt_tokens, 0) + r.prompt_tokens,
                completion_tokens = coalesce(j.completion_tokens, 0) + r.completion_tokens
            FROM judge_batch r
            WHERE j.run_id = ? AND j.pair_id = r.pair_id
            """,
            [run_id],
        )
    finally:
        con.unregister("judge_batch")


def score_counts(con: duckdb.DuckDBPyConnection, run_id: int) -> dict[int, int]:
    """{score: pairs} of the run's stored scores (pairs not deleted)."""
    return dict(
        con.execute(
            "SELECT j.score, count(*) FROM judge_scores j JOIN pairs p ON p.id = j.pair_id "
            "WHERE j.run_id = ? AND j.status = 'done' AND p.deleted_op IS NULL GROUP BY ALL",
            [run_id],
        ).fetchall()
    )


def usage(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Tokens the judge spent, per model (as answered) and local/remote server, as
    storage.distill.usage counts them: `answers` are stored verdicts; tokens include those of
    verdicts that could not be read and of pairs deleted since (what was spent stays spent)."""
    cursor = con.execute(
        """
        SELECT j.model, r.local, count(*) FILTER (WHERE j.status = 'done') AS answers,
               coalesce(sum(j.prompt_tokens), 0)::BIGINT AS prompt_tokens,
               coalesce(sum(j.completion_tokens), 0)::BIGINT AS completion_tokens,
               count(*) FILTER (WHERE j.status = 'done' AND (j.prompt_tokens IS NULL OR j.completion_tokens IS NULL))
                   AS without_usage
        FROM judge_scores j JOIN quality_runs r ON r.id = j.run_id
        WHERE j.model IS NOT NULL
        GROUP BY ALL ORDER BY answers DESC, j.model
        """
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
