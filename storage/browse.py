"""What the web app reads: map points with their colouring columns, pairs by id, breakdowns."""
from __future__ import annotations

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

# Columns a map can be coloured by, besides source and topic (all in pairs_view).
SIGNAL_COLUMNS = ["refusal", "short", "truncated", "malformed", "pii", "over_length", "conflict"]

_POINTS = """
SELECT mp.pair_id AS id, mp.x, mp.y, mp.cluster, coalesce(c.label, 'noise') AS topic,
       v.source, v.deleted, v.refusal, v."short", v.truncated, v.malformed, v.pii, v.over_length,
       v.conflict, v.dup_group, v.tags
FROM map_points mp
JOIN pairs_view v ON v.id = mp.pair_id
LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
WHERE mp.map_id = ?
ORDER BY mp.pair_id
"""


def map_frame(con: duckdb.DuckDBPyConnection, map_id: int) -> pd.DataFrame:
    """Every point of a map, one row per pair, ordered by id."""
    return con.execute(_POINTS, [map_id]).df()


def state_token(con: duckdb.DuckDBPyConnection) -> tuple:
    """Changes whenever what the app shows could have changed: a cache key for map frames."""
    return con.execute("""
        SELECT (SELECT max(id) FROM operations), (SELECT max(id) FROM jobs WHERE status = 'done'),
               (SELECT count(*) FROM pairs)
    """).fetchone()


def _register_ids(con: duckdb.DuckDBPyConnection, ids: np.ndarray) -> None:
    con.register("chosen_ids", pa.table({"id": pa.array(np.asarray(ids, dtype=np.int64))}))


def pairs_by_ids(con: duckdb.DuckDBPyConnection, ids: np.ndarray, limit: int) -> pd.DataFrame:
    """Up to `limit` of the chosen pairs, whole, in id order."""
    _register_ids(con, ids)
    try:
        return con.execute("""
            SELECT v.id, v.source, v.topic, v.deleted, v.prompt, v.response, v.tags
            FROM pairs_view v JOIN chosen_ids USING (id) ORDER BY v.id LIMIT ?
        """, [limit]).df()
    finally:
        con.unregister("chosen_ids")


def breakdown(con: duckdb.DuckDBPyConnection, ids: np.ndarray) -> dict[str, list[tuple]]:
    """Counts of the chosen pairs by source, by topic and by signal, largest first."""
    _register_ids(con, ids)
    try:
        out = {}
        for column in ("source", "topic"):
            out[column] = con.execute(f"""
                SELECT coalesce(v.{column}, '(none)'), count(*) AS n
                FROM pairs_view v JOIN chosen_ids USING (id) GROUP BY 1 ORDER BY n DESC, 1 LIMIT 20
            """).fetchall()
        counts = ", ".join(f'count(*) FILTER (WHERE v."{s}") AS "{s}"' for s in SIGNAL_COLUMNS)
        row = con.execute(f"SELECT count(*) FILTER (WHERE v.deleted), {counts} "
                          "FROM pairs_view v JOIN chosen_ids USING (id)").fetchone()
        out["signal"] = [(name, n) for name, n in zip(["deleted", *SIGNAL_COLUMNS], row) if n]
        return out
    finally:
        con.unregister("chosen_ids")


def keyword_hits(con: duckdb.DuckDBPyConnection, text: str, limit: int) -> np.ndarray:
    """Ids of pairs whose prompt or response contains `text`, case-insensitively."""
    pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
    rows = con.execute("""
        SELECT id FROM pairs WHERE prompt ILIKE ? ESCAPE '\\' OR response ILIKE ? ESCAPE '\\'
        ORDER BY id LIMIT ?
    """, [pattern, pattern, limit]).fetchall()
    return np.array([r[0] for r in rows], dtype=np.int64)


def cluster_table(con: duckdb.DuckDBPyConnection, map_id: int) -> pd.DataFrame:
    """One row per fine cluster of a map: label, parent, size, kept, signal rates, top sources."""
    rates = ", ".join(f'avg(v."{s}"::INT) AS "{s}"' for s in SIGNAL_COLUMNS)
    return con.execute(f"""
        SELECT c.id AS cluster, c.label, c.parent, c.size,
               count(*) FILTER (WHERE NOT v.deleted) AS kept, {rates}, c.top_sources
        FROM clusters c
        JOIN map_points mp ON mp.map_id = c.map_id AND mp.cluster = c.id
        JOIN pairs_view v ON v.id = mp.pair_id
        WHERE c.map_id = ? AND c.level = 'fine'
        GROUP BY ALL ORDER BY c.size DESC, c.id
    """, [map_id]).df()
