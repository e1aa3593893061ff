"""Signal runs and the signal row of each pair (one row per pair: the verdict of the latest
run that computed it, linked to that run and so to its thresholds)."""

from __future__ import annotations

import duckdb
import numpy as np
import pyarrow as pa

from curator.signals import FLAGS, flag_columns
from storage import views

# Measures' Arrow types; a flag is a boolean and its detail a string (curator.signals.FLAGS).
_MEASURE_TYPES = {"lang": pa.string(), "n_words": pa.int32(), "n_tokens": pa.int32()}


def flags() -> list[str]:
    """The registered flags' names (curator.signals.FLAGS), in registration order."""
    return list(FLAGS)


def columns() -> dict[str, pa.DataType]:
    """Every per-pair column a run writes besides (pair_id, run_id), with its Arrow type."""
    details = {flag.detail for flag in FLAGS.values() if flag.detail}
    return {
        **{name: pa.string() if name in details else pa.bool_() for name in flag_columns()},
        **_MEASURE_TYPES,
    }


def ensure_columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Add a column to `signals` for each registered flag (or detail) it lacks, and show it in
    pairs_view: a flag registered after the schema was made needs no migration. Returns the
    columns added. Column names are curator.signals' checked identifiers."""
    have = set(views.table_columns(con, "signals"))
    wanted = columns()
    added = [name for name in wanted if name not in have]
    for name in added:
        kind = "VARCHAR" if wanted[name] == pa.string() else "BOOLEAN"
        con.execute(f'ALTER TABLE signals ADD COLUMN "{name}" {kind}')
    if added:
        views.refresh_pairs_view(con)
    return added


def start_run(con: duckdb.DuckDBPyConnection, job_id: int, params: str) -> int:
    return con.execute(
        "INSERT INTO signal_runs (job_id, params) VALUES (?, ?) RETURNING id", [job_id, params]
    ).fetchone()[0]


def pending_pair_ids(con: duckdb.DuckDBPyConnection, params: str) -> np.ndarray:
    """Ids of pairs (deleted ones too: they can be restored) with no signal row computed
    under exactly these params, in id order."""
    return con.execute(
        "SELECT p.id FROM pairs p WHERE NOT EXISTS ("
        "  SELECT 1 FROM signals s JOIN signal_runs r ON r.id = s.run_id"
        "  WHERE s.pair_id = p.id AND r.params = ?) ORDER BY p.id",
        [params],
    ).fetchnumpy()["id"]


def pair_count(con: duckdb.DuckDBPyConnection) -> int:
    return con.execute("SELECT count(*) FROM pairs").fetchone()[0]


def pair_inputs(con: duckdb.DuckDBPyConnection, pair_ids: np.ndarray) -> pa.Table:
    """(id, prompt, response, messages, finish_reason) of these pairs, in the order given."""
    con.register(
        "wanted_ids",
        pa.table({"id": pa.array(pair_ids, pa.int64()), "position": pa.array(np.arange(len(pair_ids)), pa.int64())}),
    )
    try:
        return con.execute(
            "SELECT p.id, p.prompt, p.response, p.messages, p.finish_reason "
            "FROM pairs p JOIN wanted_ids w USING (id) ORDER BY w.position"
        ).to_arrow_table()
    finally:
        con.unregister("wanted_ids")


def write(con: duckdb.DuckDBPyConnection, run_id: int, pair_ids: np.ndarray, values: dict) -> None:
    """Replace these pairs' signal rows with the run's (call inside the batch's transaction)."""
    written = columns()
    batch = pa.table(
        {
            "pair_id": pa.array(pair_ids, pa.int64()),
            **{name: pa.array(values[name], kind) for name, kind in written.items()},
        }
    )
    con.register("signal_batch", batch)
    try:
        con.execute("DELETE FROM signals WHERE pair_id IN (SELECT pair_id FROM signal_batch)")
        names = ", ".join(f'"{name}"' for name in written)
        con.execute(
            f"INSERT INTO signals (pair_id, run_id, {names}) SELECT pair_id, ?, {names} FROM signal_batch", [run_id]
        )
    finally:
        con.unregister("signal_batch")


def summary(con: duckdb.DuckDBPyConnection, params: str) -> dict:
    """What the signals say about the pairs not deleted, counting only rows computed under
    `params` (`missing`: pairs without one, e.g. after an interrupted run)."""
    current = (
        "FROM pairs p LEFT JOIN (SELECT s.* FROM signals s JOIN signal_runs r ON r.id = s.run_id "
        "WHERE r.params = ?) s ON s.pair_id = p.id WHERE p.deleted_op IS NULL"
    )
    names = flags()
    counted = ", ".join(f'count(*) FILTER (WHERE s."{flag}")' for flag in names)
    row = con.execute(
        f"SELECT count(*), count(*) FILTER (WHERE s.pair_id IS NULL), {counted}, "
        "max(s.n_tokens), avg(s.n_tokens), quantile_disc(s.n_tokens, 0.5), quantile_disc(s.n_tokens, 0.95), "
        "count(*) FILTER (WHERE s.pair_id IS NOT NULL AND s.n_tokens IS NULL) " + current,
        [params],
    ).fetchone()
    pairs, missing, *flag_counts = row[: 2 + len(names)]
    max_tokens, mean_tokens, p50, p95, template_errors = row[2 + len(names) :]

    def grouped(expression: str) -> dict:
        rows = con.execute(
            f"SELECT {expression} AS k, count(*) AS n {current} AND s.pair_id IS NOT NULL "
            "GROUP BY k ORDER BY n DESC, k",
            [params],
        ).fetchall()
        return {key if key is not None else "none": n for key, n in rows}

    reasons = grouped("s.malformed_reason")
    reasons.pop("none", None)
    kinds = con.execute(
        f"SELECT kind, count(*) AS n FROM (SELECT unnest(string_split(s.pii_kinds, ',')) AS kind {current} "
        "AND s.pii_kinds IS NOT NULL) GROUP BY kind ORDER BY n DESC, kind",
        [params],
    ).fetchall()
    return {
        "pairs": pairs,
        "missing": missing,
        "counts": dict(zip(names, flag_counts)),
        "malformed_reasons": reasons,
        "pii_kinds": dict(kinds),
        "languages": grouped("s.lang"),
        "tokens": {
            "max": max_tokens,
            "mean": round(mean_tokens, 1) if mean_tokens is not None else None,
            "p50": p50,
            "p95": p95,
            "template_errors": template_errors,
        },
    }
