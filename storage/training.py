"""Training runs, their loss history, and per-pair losses under a base and a tuned model."""

from __future__ import annotations

import json

import duckdb
import pyarrow as pa

_RUN_COLUMNS = (
    "id, directory, job_id, base, data, params, steps, val_loss_initial, val_loss_final, "
    "tokens_per_s, created_at, finished_at"
)


def start_run(con: duckdb.DuckDBPyConnection, job_id: int, directory: str, base: str, data: str, params: dict) -> int:
    """The run of `directory`: a new row, or the existing one (a resumed run), now on job_id."""
    row = con.execute("SELECT id FROM train_runs WHERE directory = ?", [directory]).fetchone()
    if row is not None:
        con.execute("UPDATE train_runs SET job_id = ?, finished_at = NULL WHERE id = ?", [job_id, row[0]])
        return row[0]
    return con.execute(
        "INSERT INTO train_runs (directory, job_id, base, data, params) VALUES (?, ?, ?, ?, ?) RETURNING id",
        [directory, job_id, base, data, json.dumps(params, sort_keys=True)],
    ).fetchone()[0]


def forget_after(con: duckdb.DuckDBPyConnection, run_id: int, step: int) -> None:
    """Drop losses logged after `step`: a resumed run logs them again from its checkpoint."""
    con.execute("DELETE FROM train_losses WHERE run_id = ? AND step > ?", [run_id, step])


def add_loss(
    con: duckdb.DuckDBPyConnection,
    run_id: int,
    step: int,
    split: str,
    loss: float,
    lr: float | None = None,
    tokens: int | None = None,
) -> None:
    con.execute("INSERT INTO train_losses VALUES (?, ?, ?, ?, ?, ?)", [run_id, step, split, loss, lr, tokens])


def finish_run(con: duckdb.DuckDBPyConnection, run_id: int, report: dict) -> None:
    con.execute(
        "UPDATE train_runs SET steps = ?, val_loss_initial = ?, val_loss_final = ?, tokens_per_s = ?, "
        "finished_at = now() WHERE id = ?",
        [report["steps"], report["val_loss_initial"], report["val_loss_final"], report["tokens_per_s"], run_id],
    )


def _run(cursor: duckdb.DuckDBPyConnection) -> list[dict]:
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, values)) for values in cursor.fetchall()]
    for row in rows:
        row["params"] = json.loads(row["params"])
    return rows


def runs(con: duckdb.DuckDBPyConnection, limit: int = 50) -> list[dict]:
    """Training runs, newest first, with their job's status (running, done, failed)."""
    return _run(
        con.execute(
            f"SELECT {', '.join('r.' + c.strip() for c in _RUN_COLUMNS.split(','))}, j.status, j.progress, j.message "
            "FROM train_runs r LEFT JOIN jobs j ON j.id = r.job_id ORDER BY r.id DESC LIMIT ?",
            [limit],
        )
    )


def losses(con: duckdb.DuckDBPyConnection, run_id: int) -> list[dict]:
    """The run's loss history in step order: {step, split ('train'|'val'), loss, lr, tokens}."""
    cursor = con.execute(
        "SELECT step, split, loss, lr, tokens FROM train_losses WHERE run_id = ? ORDER BY step, split DESC", [run_id]
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]


# --- per-pair losses (`curator score`) ----------------------------------------------------------


def match_pairs(con: duckdb.DuckDBPyConnection, prompts: list[str], responses: list[str]) -> list[tuple[int, int]]:
    """(row, pair id) for every stored pair whose normalized prompt + response is that row's:
    the hash ingest stores as pairs.pair_hash, computed here the same way, in SQL."""
    con.register(
        "scored_rows",
        pa.table(
            {
                "row": pa.array(range(len(prompts)), pa.int64()),
                "prompt": pa.array(prompts, pa.string()),
                "response": pa.array(responses, pa.string()),
            }
        ),
    )
    try:
        return con.execute(
            "SELECT r.row, p.id FROM scored_rows r JOIN pairs p ON p.pair_hash = "
            "md5_number_lower(normalize_text(r.prompt) || chr(31) || normalize_text(r.response)) "
            "ORDER BY r.row, p.id"
        ).fetchall()
    finally:
        con.unregister("scored_rows")


def save_scores(
    con: duckdb.DuckDBPyConnection,
    job_id: int,
    directory: str,
    base: str,
    pair_ids: list[int],
    trained: list[bool],
    tokens: list[int],
    loss_base: list[float],
    loss_tuned: list[float],
) -> int:
    """One score run and its per-pair losses; call inside the write transaction that commits
    them together (pairs_view shows the latest score run, so it must never see half of one).
    A pair listed twice (an exact duplicate on both sides of the split) keeps one row: the mean
    of its losses, trained if either was."""
    train_run = con.execute("SELECT id FROM train_runs WHERE directory = ?", [directory]).fetchone()
    con.register(
        "new_losses",
        pa.table(
            {
                "pair_id": pa.array(pair_ids, pa.int64()),
                "trained": pa.array(trained, pa.bool_()),
                "tokens": pa.array(tokens, pa.int32()),
                "loss_base": pa.array(loss_base, pa.float64()),
                "loss_tuned": pa.array(loss_tuned, pa.float64()),
            }
        ),
    )
    try:
        run_id = con.execute(
            "INSERT INTO score_runs (job_id, train_run_id, directory, base, pairs) "
            "VALUES (?, ?, ?, ?, (SELECT count(DISTINCT pair_id) FROM new_losses)) RETURNING id",
            [job_id, train_run[0] if train_run else None, directory, base],
        ).fetchone()[0]
        con.execute(
            "INSERT INTO pair_losses SELECT ?, pair_id, bool_or(trained), max(tokens), avg(loss_base), "
            "avg(loss_tuned) FROM new_losses GROUP BY pair_id",
            [run_id],
        )
    finally:
        con.unregister("new_losses")
    return run_id


def score_summary(con: duckdb.DuckDBPyConnection, score_run_id: int) -> list[dict]:
    """Mean losses of a score run's pairs, trained and validation-only apart."""
    cursor = con.execute(
        "SELECT CASE WHEN trained THEN 'train' ELSE 'val' END AS split, count(*) AS pairs, "
        "avg(loss_base) AS loss_base, avg(loss_tuned) AS loss_tuned, "
        "avg((loss_tuned < loss_base)::INTEGER) AS improved "
        "FROM pair_losses WHERE run_id = ? GROUP BY ALL ORDER BY split",
        [score_run_id],
    )
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, values)) for values in cursor.fetchall()]
