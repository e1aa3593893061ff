"""Maps: 2-D coordinates of pairs, their clusters and topic labels."""

from __future__ import annotations

import json
import os
import pickle
from dataclasses import dataclass
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa


@dataclass
class MapRow:
    id: int
    name: str
    field: str
    set_id: int
    params: dict
    projection: str
    is_default: bool
    fitted: int
    placed: int


_COLUMNS = "id, name, field, set_id, params, projection, is_default, fitted, placed"


def _row(values) -> MapRow:
    values = list(values)
    values[4] = json.loads(values[4])
    return MapRow(*values)


def find(con: duckdb.DuckDBPyConnection, name: str) -> MapRow | None:
    row = con.execute(f"SELECT {_COLUMNS} FROM maps WHERE name = ?", [name]).fetchone()
    return _row(row) if row else None


def default(con: duckdb.DuckDBPyConnection) -> MapRow | None:
    row = con.execute(f"SELECT {_COLUMNS} FROM maps WHERE is_default").fetchone()
    return _row(row) if row else None


def listing(con: duckdb.DuckDBPyConnection) -> list[MapRow]:
    return [_row(r) for r in con.execute(f"SELECT {_COLUMNS} FROM maps ORDER BY id").fetchall()]


def replace(
    con: duckdb.DuckDBPyConnection,
    name: str,
    field: str,
    set_id: int,
    params: dict,
    projection: str,
    fitted: int,
    make_default: bool,
) -> int:
    """A freshly fitted map under `name`, replacing any earlier map of that name."""
    old = find(con, name)
    if old is not None:
        for table in ("map_points", "clusters"):
            con.execute(f"DELETE FROM {table} WHERE map_id = ?", [old.id])
        con.execute("DELETE FROM maps WHERE id = ?", [old.id])
    first = con.execute("SELECT count(*) = 0 FROM maps").fetchone()[0]
    is_default = make_default or first or (old is not None and old.is_default)
    if is_default:
        con.execute("UPDATE maps SET is_default = false")
    return con.execute(
        "INSERT INTO maps (name, field, set_id, params, projection, is_default, fitted) "
        "VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [name, field, set_id, json.dumps(params, sort_keys=True), projection, is_default, fitted],
    ).fetchone()[0]


def add_points(
    con: duckdb.DuckDBPyConnection,
    map_id: int,
    pair_ids: np.ndarray,
    coords: np.ndarray,
    clusters: np.ndarray,
    placed: bool,
) -> None:
    con.register(
        "new_points",
        pa.table(
            {
                "pair_id": pa.array(pair_ids, pa.int64()),
                "x": pa.array(coords[:, 0], pa.float32()),
                "y": pa.array(coords[:, 1], pa.float32()),
                "cluster": pa.array(clusters, pa.int32()),
            }
        ),
    )
    try:
        con.execute("INSERT INTO map_points SELECT ?, pair_id, x, y, cluster, ? FROM new_points", [map_id, placed])
    finally:
        con.unregister("new_points")
    if placed:
        con.execute("UPDATE maps SET placed = placed + ?, updated_at = now() WHERE id = ?", [len(pair_ids), map_id])


def unmapped_pair_ids(con: duckdb.DuckDBPyConnection, map_id: int) -> np.ndarray:
    return con.execute(
        "SELECT id FROM pairs WHERE id NOT IN (SELECT pair_id FROM map_points WHERE map_id = ?) ORDER BY id", [map_id]
    ).fetchnumpy()["id"]


def points(con: duckdb.DuckDBPyConnection, map_id: int) -> dict[str, np.ndarray]:
    """pair_id, x, y, cluster, placed of every point of the map, in pair id order."""
    return con.execute(
        "SELECT pair_id, x, y, cluster, placed FROM map_points WHERE map_id = ? ORDER BY pair_id", [map_id]
    ).fetchnumpy()


def write_clusters(
    con: duckdb.DuckDBPyConnection,
    map_id: int,
    fine_labels: dict[int, str],
    parents: dict[int, int],
    coarse_labels: dict[int, str],
) -> None:
    """(Re)write the clusters of a map: fine ones with their parent, coarse ones, labels."""
    con.execute("DELETE FROM clusters WHERE map_id = ?", [map_id])
    rows = [("fine", cid, parents.get(cid), label) for cid, label in fine_labels.items()]
    rows += [("coarse", cid, None, label) for cid, label in coarse_labels.items()]
    con.register(
        "cluster_names",
        pa.table(
            {
                "level": [r[0] for r in rows],
                "id": pa.array([r[1] for r in rows], pa.int32()),
                "parent": pa.array([r[2] for r in rows], pa.int32()),
                "label": [r[3] for r in rows],
            }
        ),
    )
    try:
        con.execute("INSERT INTO clusters SELECT ?, level, id, parent, label, 0, '{}' FROM cluster_names", [map_id])
    finally:
        con.unregister("cluster_names")
    recount_clusters(con, map_id)


def recount_clusters(con: duckdb.DuckDBPyConnection, map_id: int) -> None:
    """Sizes and top sources of a map's clusters, counted from its points."""
    con.execute(
        """
        WITH members AS (
            SELECT mp.cluster AS fine, coalesce(c.parent, -1) AS coarse, p.source
            FROM map_points mp JOIN pairs p ON p.id = mp.pair_id
            LEFT JOIN clusters c ON c.map_id = mp.map_id AND c.level = 'fine' AND c.id = mp.cluster
            WHERE mp.map_id = $map
        ),
        per_source AS (
            SELECT 'fine' AS level, fine AS id, source, count(*) AS n FROM members GROUP BY ALL
            UNION ALL
            SELECT 'coarse', coarse, source, count(*) FROM members GROUP BY ALL
        ),
        summary AS (
            SELECT level, id, sum(n) AS size,
                   to_json(map_from_entries(list({'k': source, 'v': n} ORDER BY n DESC, source)[1:5]))::VARCHAR
                       AS top_sources
            FROM per_source GROUP BY level, id
        )
        UPDATE clusters SET size = summary.size, top_sources = summary.top_sources
        FROM summary
        WHERE clusters.map_id = $map AND clusters.level = summary.level AND clusters.id = summary.id
        """,
        {"map": map_id},
    )


def cluster_listing(con: duckdb.DuckDBPyConnection, map_id: int) -> list[dict]:
    cursor = con.execute(
        "SELECT level, id, parent, label, size, top_sources FROM clusters WHERE map_id = ? "
        "ORDER BY level DESC, size DESC, id",
        [map_id],
    )
    names = [d[0] for d in cursor.description]
    rows = [dict(zip(names, r)) for r in cursor.fetchall()]
    for row in rows:
        row["top_sources"] = json.loads(row["top_sources"])
    return rows


# --- the fitted projection, a pickle beside the database (as the vectors are) ---------------


def save_projection(db_path: str | os.PathLike, name: str, fitted: object) -> Path:
    """Write a map's fitted projection to curator.duckdb.maps/NAME.projection.pkl (atomically:
    a crash leaves the previous file or the new one) and return its path."""
    directory = Path(f"{db_path}.maps")
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{_safe_file_name(name)}.projection.pkl"
    partial = path.with_suffix(".partial")
    with open(partial, "wb") as f:
        pickle.dump(fitted, f, protocol=pickle.HIGHEST_PROTOCOL)
    os.replace(partial, path)
    return path


def load_projection(path: str | os.PathLike) -> object:
    """The fitted projection save_projection wrote (the tool's own file, never user input)."""
    with open(path, "rb") as f:
        return pickle.load(f)


def _safe_file_name(name: str) -> str:
    return "".join(ch if ch.isalnum() or ch in "-_." else "_" for ch in name)
