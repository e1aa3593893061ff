"""What the web app reads: map points with their colouring columns, pairs by id, what a selection holds."""

from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from curator.errors import UserError
from curator.signals import FLAGS
from storage import concepts as concept_rows


def signal_columns() -> list[str]:
    """Flags a map can be coloured and filtered by, besides source and topic (all in pairs_view):
    the signal flags (curator.signals.FLAGS) and duplicates' conflict."""
    return [*FLAGS, "conflict"]


# Per-pair losses of the latest `curator score` run (NULL: not scored), and what tuning changed.
LOSS_COLUMNS = ["loss_base", "loss_tuned", "loss_change"]
# Model-based quality of the latest `curator quality` runs; concepts add concept_NAME columns.
QUALITY_COLUMNS = ["ifd", "judge_score"]
# Scores shown in quintiles (judge_score is five values already: shown as they are).
SCORE_COLUMNS = [*LOSS_COLUMNS, "ifd"]


def is_score(column: str) -> bool:
    """A continuous score: coloured in quintiles, filtered by a range."""
    return column in SCORE_COLUMNS or column.startswith(concept_rows.COLUMN_PREFIX)


# What jobs decide (coordinates, topics, sources, signals, duplicate groups, losses): changes only
# when a job finishes, so the app reads it once per job. What operations decide (deleted,
# tags) is read apart, cheaply, after every operation (`marks`).
_POINTS = """
SELECT mp.pair_id AS id, mp.x, mp.y, mp.cluster, coalesce(c.label, 'noise') AS topic,
       v.source, {flags}, v.dup_group, v.loss_base, v.loss_tuned, v.loss_tuned - v.loss_base AS loss_change,
       v.ifd, v.judge_score{concepts}
FROM map_points mp
JOIN pairs_view v ON v.id = mp.pair_id
LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
WHERE mp.map_id = ?
ORDER BY mp.pair_id
"""


def map_points(con: duckdb.DuckDBPyConnection, map_id: int) -> pd.DataFrame:
    """Every point of a map with what jobs computed for it, one row per pair, ordered by id.
    Source and topic are categorical: a handful of values repeated a million times. Read
    through Arrow, whose dictionaries become the categories directly: DuckDB's .df() makes a
    Python string of every value first (1.1 s of 1.3 s at 1M points: bench/app.py's first
    paint). Columns with NULLs keep
    pandas' nullable types (boolean, Int64), as .df() gives them."""
    concepts = "".join(f', v."{column}"' for column in concept_rows.columns(con))
    flags = ", ".join(f'v."{name}"' for name in signal_columns())
    table = con.execute(_POINTS.format(flags=flags, concepts=concepts), [map_id]).arrow().read_all()
    frame = table.to_pandas(strings_to_categorical=True)
    nullable = {}
    for field in table.schema:
        kind = frame[field.name].dtype
        if pa.types.is_boolean(field.type) and kind == object:  # noqa: E721 (a numpy dtype's ==, not a type comparison)
            nullable[field.name] = "boolean"
        elif pa.types.is_integer(field.type) and kind.kind == "f":
            nullable[field.name] = "Int64"
    return frame.astype(nullable)


def marks(con: duckdb.DuckDBPyConnection) -> tuple[np.ndarray, pd.DataFrame]:
    """What operations decided: (sorted ids of the deleted pairs, first tag of each tagged pair)."""
    deleted = con.execute("SELECT id FROM pairs WHERE deleted_op IS NOT NULL ORDER BY id").fetchnumpy()["id"]
    tags = con.execute("SELECT pair_id AS id, min(tag) AS tag FROM tags GROUP BY pair_id ORDER BY pair_id").df()
    return deleted, tags


def state_tokens(con: duckdb.DuckDBPyConnection) -> tuple[tuple, int | None]:
    """(a token that changes when a job finishes or pairs arrive, one that changes with every
    operation): cache keys for `map_points` and `marks`."""
    jobs, pairs, ops = con.execute("""
        SELECT (SELECT max(id) FROM jobs WHERE status = 'done'), (SELECT count(*) FROM pairs),
               (SELECT max(id) FROM operations)
    """).fetchone()
    return (jobs, pairs), ops


def _register_ids(con: duckdb.DuckDBPyConnection, ids: np.ndarray) -> None:
    con.register("chosen_ids", pa.table({"id": pa.array(np.asarray(ids, dtype=np.int64))}))


def pairs_by_ids(con: duckdb.DuckDBPyConnection, ids: np.ndarray, limit: int, keep_order: bool = False) -> pd.DataFrame:
    """Up to `limit` of the chosen pairs, whole, in id order (or in the order given), with
    their quality scores.

    Built from the base tables, starting from the few ids: through pairs_view, DuckDB
    joins a million rows before it filters them (3 s against 0.1 s at 1M pairs)."""
    ids = np.asarray(ids, dtype=np.int64)
    chosen = ids[:limit] if keep_order else np.sort(ids)[:limit]
    con.register("chosen_ids", pa.table({"id": pa.array(chosen), "k": pa.array(np.arange(len(chosen)))}))
    try:
        return con.execute("""
            SELECT p.id, p.source, c.label AS topic, p.deleted_op IS NOT NULL AS deleted, p.prompt, p.response,
                   coalesce((SELECT list(t.tag ORDER BY t.tag) FROM tags t WHERE t.pair_id = p.id),
                            []::VARCHAR[]) AS tags,
                   (SELECT q.ifd FROM pair_ifd q WHERE q.pair_id = p.id AND q.run_id =
                        (SELECT max(id) FROM quality_runs WHERE kind = 'ifd')) AS ifd,
                   (SELECT j.score FROM judge_scores j WHERE j.pair_id = p.id AND j.status = 'done' AND j.run_id =
                        (SELECT max(id) FROM quality_runs WHERE kind = 'judge')) AS judge_score
            FROM chosen_ids ci
            JOIN pairs p ON p.id = ci.id
            LEFT JOIN maps m ON m.is_default
            LEFT JOIN map_points mp ON mp.map_id = m.id AND mp.pair_id = p.id
            LEFT JOIN clusters c ON c.map_id = m.id AND c.level = 'fine' AND c.id = mp.cluster
            ORDER BY ci.k
        """).df()
    finally:
        con.unregister("chosen_ids")


def ids_by_score(
    con: duckdb.DuckDBPyConnection, ids: np.ndarray, column: str, limit: int, descending: bool
) -> np.ndarray:
    """Up to `limit` of the chosen ids, highest (or lowest) `column` first; unscored ones last.
    `column` must be one of pairs_view's score columns (checked: it is spliced into the SQL)."""
    allowed = {*SCORE_COLUMNS, *QUALITY_COLUMNS, *concept_rows.columns(con)} - {"loss_change"}
    if column not in allowed:
        raise UserError(f"cannot sort by {column!r}; one of: {', '.join(sorted(allowed))}")
    _register_ids(con, ids)
    try:
        return con.execute(
            f"SELECT v.id FROM pairs_view v JOIN chosen_ids USING (id) "
            f'ORDER BY v."{column}" {"DESC" if descending else "ASC"} NULLS LAST, v.id LIMIT ?',
            [limit],
        ).fetchnumpy()["id"]
    finally:
        con.unregister("chosen_ids")


NOT_ON_MAP = "(not on the map)"


def breakdown_columns(con: duckdb.DuckDBPyConnection, ids: np.ndarray, map_id: int | None) -> pd.DataFrame:
    """What curator.selection.breakdown counts, for the chosen pairs: source; topic on map
    `map_id` as the map shows it (its fine cluster's label, 'noise' outside every cluster,
    NOT_ON_MAP for pairs it does not hold); deleted and signal_columns() (NULL: not computed)."""
    _register_ids(con, ids)
    flags = ", ".join(f'v."{s}"' for s in signal_columns())
    try:
        return con.execute(
            f"""
            SELECT v.source,
                   CASE WHEN mp.pair_id IS NULL THEN ? ELSE coalesce(c.label, 'noise') END AS topic,
                   v.deleted, {flags}
            FROM pairs_view v JOIN chosen_ids USING (id)
            LEFT JOIN map_points mp ON mp.map_id = ? AND mp.pair_id = v.id
            LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
            """,
            [NOT_ON_MAP, map_id],
        ).df()
    finally:
        con.unregister("chosen_ids")


def keyword_hits(con: duckdb.DuckDBPyConnection, text: str, limit: int) -> np.ndarray:
    """Ids of pairs whose prompt or response contains `text`, case-insensitively."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = con.execute(
        """
        SELECT id FROM pairs WHERE prompt ILIKE ? ESCAPE '\\' OR response ILIKE ? ESCAPE '\\'
        ORDER BY id LIMIT ?
    """,
        [pattern, pattern, limit],
    ).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def cluster_table(con: duckdb.DuckDBPyConnection, map_id: int) -> pd.DataFrame:
    """One row per fine cluster of a map: label, parent, size, kept, signal rates, top sources."""
    rates = ", ".join(f'avg(v."{s}"::INT) AS "{s}"' for s in signal_columns())
    return con.execute(
        f"""
        SELECT c.id AS cluster, c.label, c.parent, c.size,
               count(*) FILTER (WHERE NOT v.deleted) AS kept, {rates}, c.top_sources
        FROM clusters c
        JOIN map_points mp ON mp.map_id = c.map_id AND mp.cluster = c.id
        JOIN pairs_view v ON v.id = mp.pair_id
        WHERE c.map_id = ? AND c.level = 'fine'
        GROUP BY ALL ORDER BY c.size DESC, c.id
    """,
        [map_id],
    ).df()


def pair_preview(con: duckdb.DuckDBPyConnection, pair_id: int, map_id: int, chars: int) -> dict | None:
    """What the map shows when the pointer rests on a pair: source, topic on that map, deleted,
    and the first `chars` characters of prompt and response (never the whole texts)."""
    row = con.execute(
        """
        SELECT p.id, p.source, coalesce(c.label, 'noise'), p.deleted_op IS NOT NULL,
               left(p.prompt, ?), length(p.prompt) > ?, left(p.response, ?), length(p.response) > ?
        FROM pairs p
        LEFT JOIN map_points mp ON mp.map_id = ? AND mp.pair_id = p.id
        LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
        WHERE p.id = ?
    """,
        [chars, chars, chars, chars, map_id, pair_id],
    ).fetchone()
    if row is None:
        return None
    pair_id, source, topic, deleted, prompt, prompt_cut, response, response_cut = row
    return {
        "id": str(pair_id),
        "source": source,
        "topic": topic,
        "deleted": deleted,
        "prompt": prompt + ("…" if prompt_cut else ""),
        "response": response + ("…" if response_cut else ""),
    }
