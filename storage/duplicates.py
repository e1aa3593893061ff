"""Duplicate runs and rows: what `curator duplicates` reads and writes."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa

from curator.signals import FLAGS

# Every pair that is not deleted, in id order, with what the duplicate search and the keep
# choice need: the flags that weigh on the choice (curator.signals.FLAGS' penalties). `words`
# falls back to a whitespace count where no signals row exists yet.
_LIVE_PAIRS = r"""
SELECT p.id, p.prompt_hash, p.pair_hash,
       md5_number_lower(normalize_text(p.response)) AS response_hash,
       coalesce(s.n_words, len(string_split_regex(p.response, '\s+')))::BIGINT AS words{flags}
FROM pairs p LEFT JOIN signals s ON s.pair_id = p.id
WHERE p.deleted_op IS NULL
ORDER BY p.id
"""


def live_pairs(con: duckdb.DuckDBPyConnection) -> dict[str, np.ndarray]:
    flags = "".join(f', coalesce(s."{f.name}", false) AS "{f.name}"' for f in FLAGS.values() if f.penalty)
    return con.execute(_LIVE_PAIRS.format(flags=flags)).fetchnumpy()


def unsignalled_pairs(con: duckdb.DuckDBPyConnection) -> int:
    """Pairs not deleted that have no signals row (signals were never computed, or are older)."""
    return con.execute(
        "SELECT count(*) FROM pairs p WHERE p.deleted_op IS NULL "
        "AND NOT EXISTS (SELECT 1 FROM signals s WHERE s.pair_id = p.id)"
    ).fetchone()[0]


def sibling_set(con: duckdb.DuckDBPyConnection, set_id: int, field: str) -> int | None:
    """The embedding set that the model of `set_id` made of another field, if there is one."""
    row = con.execute(
        "SELECT other.id FROM embedding_sets mine JOIN embedding_sets other "
        "ON other.model = mine.model AND other.field = ? WHERE mine.id = ?",
        [field, set_id],
    ).fetchone()
    return row[0] if row else None


def replace(con: duckdb.DuckDBPyConnection, job_id: int, params: dict, rows: dict[str, np.ndarray]) -> int:
    """Record a run and make its rows the only ones (a rerun replaces the previous result).
    rows: pair_id, dup_group (-1: none), dup_kind, dup_keep, conflict. Call inside a transaction."""
    run_id = con.execute(
        "INSERT INTO duplicate_runs (job_id, params) VALUES (?, ?) RETURNING id",
        [job_id, json.dumps(params, sort_keys=True)],
    ).fetchone()[0]
    con.execute("DELETE FROM duplicates")
    grouped = rows["dup_group"] >= 0
    con.register(
        "duplicate_rows",
        pa.table(
            {
                "pair_id": pa.array(rows["pair_id"], pa.int64()),
                "dup_group": pa.array(rows["dup_group"], pa.int64(), mask=~grouped),
                "dup_kind": pa.array(rows["dup_kind"].tolist(), pa.string()),
                "dup_keep": pa.array(rows["dup_keep"], pa.bool_(), mask=~grouped),
                "conflict": pa.array(rows["conflict"], pa.bool_()),
            }
        ),
    )
    try:
        con.execute(
            "INSERT INTO duplicates SELECT pair_id, ?, dup_group, dup_kind, dup_keep, conflict FROM duplicate_rows",
            [run_id],
        )
    finally:
        con.unregister("duplicate_rows")
    return run_id


def summary(con: duckdb.DuckDBPyConnection, largest: int = 10) -> dict | None:
    """The latest run: its params, counts, and its largest groups with the kept member's prompt."""
    run = con.execute("SELECT id, job_id, params, created_at FROM duplicate_runs ORDER BY id DESC LIMIT 1").fetchone()
    if run is None:
        return None
    counts = con.execute(
        """
        SELECT count(DISTINCT dup_group) FILTER (WHERE dup_kind = 'exact'),
               count(DISTINCT dup_group) FILTER (WHERE dup_kind = 'semantic'),
               count(*) FILTER (WHERE dup_group IS NOT NULL),
               count(*) FILTER (WHERE NOT dup_keep),
               count(*) FILTER (WHERE conflict)
        FROM duplicates WHERE run_id = ?
        """,
        [run[0]],
    ).fetchone()
    cursor = con.execute(
        """
        SELECT d.dup_group AS "group", any_value(d.dup_kind) AS kind, count(*) AS size,
               any_value(p.id) FILTER (WHERE d.dup_keep) AS keep_id,
               any_value(p.prompt) FILTER (WHERE d.dup_keep) AS prompt,
               any_value(p.response) FILTER (WHERE d.dup_keep) AS response
        FROM duplicates d JOIN pairs p ON p.id = d.pair_id
        WHERE d.run_id = ? AND d.dup_group IS NOT NULL
        GROUP BY d.dup_group ORDER BY d.dup_group LIMIT ?
        """,
        [run[0], largest],
    )
    names = [c[0] for c in cursor.description]
    return {
        "run_id": run[0],
        "job_id": run[1],
        "params": json.loads(run[2]),
        "created_at": run[3],
        "exact_groups": counts[0],
        "semantic_groups": counts[1],
        "pairs_in_groups": counts[2],
        "not_kept": counts[3],
        "conflicts": counts[4],
        "largest_groups": [dict(zip(names, r)) for r in cursor.fetchall()],
    }
