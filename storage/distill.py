"""Distill runs and the state of every prompt: what makes `curator distill` resumable.

A run is a `files` row (sha256 = curator.distill.run_identity) plus a distill_runs row; its
prompts are distill_prompts rows (pending -> done | failed). An answer's pair and its prompt's
`done` are written in one transaction, so a prompt is done exactly when its answer is stored.
"""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa

from curator.distill import Prompt

PROMPT_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("pair_index", pa.int32()),
        ("prompt", pa.string()),
        ("context", pa.string()),  # JSON, or null
    ]
)

RESULT_SCHEMA = pa.schema(
    [
        ("line", pa.int64()),
        ("pair_index", pa.int32()),
        ("status", pa.string()),  # done | failed
        ("attempts", pa.int32()),  # requests sent for it in this run
        ("error", pa.string()),
        ("max_tokens", pa.int32()),
        ("prompt_tokens", pa.int64()),
        ("completion_tokens", pa.int64()),
    ]
)


def create_run(
    con: duckdb.DuckDBPyConnection,
    file_id: int,
    model: str,
    base_url: str | None,
    local: bool,
    prompts: str,
    settings: dict,
) -> None:
    con.execute(
        "INSERT INTO distill_runs (file_id, model, base_url, local, prompts, settings) VALUES (?, ?, ?, ?, ?, ?)",
        [file_id, model, base_url, local, prompts, json.dumps(settings, sort_keys=True)],
    )


def run_settings(con: duckdb.DuckDBPyConnection, file_id: int) -> dict:
    return json.loads(con.execute("SELECT settings FROM distill_runs WHERE file_id = ?", [file_id]).fetchone()[0])


def set_endpoint(con: duckdb.DuckDBPyConnection, file_id: int, base_url: str | None, local: bool) -> None:
    """A resumed run may reach its model elsewhere (a local server's port changes each start)."""
    con.execute("UPDATE distill_runs SET base_url = ?, local = ? WHERE file_id = ?", [base_url, local, file_id])


def add_prompts(con: duckdb.DuckDBPyConnection, file_id: int, prompts: pa.Table) -> None:
    if prompts.num_rows == 0:
        return
    con.register("prompt_batch", prompts)
    try:
        con.execute(
            "INSERT INTO distill_prompts (file_id, line, pair_index, prompt, context, status) "
            "SELECT ?, line, pair_index, prompt, context, 'pending' FROM prompt_batch",
            [file_id],
        )
    finally:
        con.unregister("prompt_batch")


def add_source_prompts(con: duckdb.DuckDBPyConnection, file_id: int, source: str) -> int:
    """Queue the prompts of a source's pairs (not deleted) that this run has not queued yet; the
    answered pair's id stands as the prompt's line. Returns how many were added."""
    return con.execute(
        """
        INSERT INTO distill_prompts (file_id, line, pair_index, prompt, context, status)
        SELECT $file_id, p.id, 0, p.prompt, p.messages, 'pending'
        FROM pairs p
        WHERE p.source = $source AND p.deleted_op IS NULL AND p.file_id <> $file_id
          AND NOT EXISTS (SELECT 1 FROM distill_prompts d WHERE d.file_id = $file_id AND d.line = p.id)
        ORDER BY p.id
        """,
        {"file_id": file_id, "source": source},
    ).fetchone()[0]


def source_exists(con: duckdb.DuckDBPyConnection, source: str) -> bool:
    return con.execute("SELECT count(*) > 0 FROM pairs WHERE source = ?", [source]).fetchone()[0]


def todo(con: duckdb.DuckDBPyConnection, file_id: int, after: tuple[int, int] | None, limit: int) -> list[Prompt]:
    """The next prompts still to answer (pending, or failed in an earlier run), in order."""
    line, index = after if after is not None else (-(2**63), -1)
    rows = con.execute(
        "SELECT line, pair_index, prompt, context FROM distill_prompts "
        "WHERE file_id = ? AND status <> 'done' AND (line, pair_index) > (?, ?) "
        "ORDER BY line, pair_index LIMIT ?",
        [file_id, line, index, limit],
    ).fetchall()
    return [
        Prompt(line, pair_index, prompt, json.loads(context) if context else None)
        for line, pair_index, prompt, context in rows
    ]


def counts(con: duckdb.DuckDBPyConnection, file_id: int) -> dict[str, int]:
    row = con.execute(
        "SELECT count(*) FILTER (WHERE status = 'pending'), count(*) FILTER (WHERE status = 'done'), "
        "count(*) FILTER (WHERE status = 'failed') FROM distill_prompts WHERE file_id = ?",
        [file_id],
    ).fetchone()
    return dict(zip(("pending", "done", "failed"), row))


def record(con: duckdb.DuckDBPyConnection, file_id: int, results: pa.Table) -> None:
    """Each prompt's outcome; call it in the transaction that inserts the answered pairs."""
    if results.num_rows == 0:
        return
    con.register("result_batch", results)
    try:
        con.execute(
            """
            UPDATE distill_prompts AS d
            SET status = r.status, attempts = d.attempts + r.attempts, error = r.error,
                max_tokens = r.max_tokens, prompt_tokens = r.prompt_tokens,
                completion_tokens = r.completion_tokens
            FROM result_batch r
            WHERE d.file_id = ? AND d.line = r.line AND d.pair_index = r.pair_index
            """,
            [file_id],
        )
        con.execute(
            "UPDATE files SET pairs = pairs + (SELECT count(*) FROM result_batch WHERE status = 'done') WHERE id = ?",
            [file_id],
        )
    finally:
        con.unregister("result_batch")


def usage(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Tokens of every stored answer, per model (as answered) and local/remote server. Deleted
    pairs count: curation does not refund what was spent."""
    cursor = con.execute(
        """
        SELECT p.model, r.local, count(*) AS answers,
               coalesce(sum(d.prompt_tokens), 0)::BIGINT AS prompt_tokens,
               coalesce(sum(d.completion_tokens), 0)::BIGINT AS completion_tokens,
               count(*) FILTER (WHERE d.prompt_tokens IS NULL OR d.completion_tokens IS NULL) AS without_usage
        FROM distill_prompts d
        JOIN distill_runs r USING (file_id)
        JOIN pairs p ON p.file_id = d.file_id AND p.line = d.line AND p.pair_index = d.pair_index
        WHERE d.status = 'done'
        GROUP BY ALL ORDER BY answers DESC, p.model
        """
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def answers(con: duckdb.DuckDBPyConnection, file_id: int) -> list[dict]:
    """A run's answered pairs in prompt order, as GPT4All records with model and finish_reason."""
    cursor = con.execute(
        "SELECT prompt, response, source, model, finish_reason FROM pairs WHERE file_id = ? ORDER BY line, pair_index",
        [file_id],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]
