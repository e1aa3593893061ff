"""Named dataset versions: frozen sets of kept pair ids, and what changed between two of them."""

from __future__ import annotations

import duckdb
import numpy as np

from curator.errors import UserError

_COLUMNS = "id, name, note, op_id, pairs, created_at"


def _rows(cursor) -> list[dict]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row)) for row in cursor.fetchall()]


def create(con: duckdb.DuckDBPyConnection, name: str, note: str | None) -> dict:
    """Snapshot the pairs kept now (not deleted) under `name`. Call inside a transaction."""
    if not name.strip():
        raise UserError("a version needs a name")
    if find(con, name) is not None:
        raise UserError(f"version {name!r} exists already; pick another name")
    version_id = con.execute("SELECT nextval('version_id_seq')").fetchone()[0]
    con.execute("INSERT INTO version_pairs SELECT ?, id FROM pairs WHERE deleted_op IS NULL", [version_id])
    con.execute(
        "INSERT INTO versions (id, name, note, op_id, pairs) "
        "SELECT $v, $name, $note, (SELECT max(id) FROM operations), "
        "(SELECT count(*) FROM version_pairs WHERE version_id = $v)",
        {"v": version_id, "name": name, "note": note},
    )
    return find(con, name)


def find(con: duckdb.DuckDBPyConnection, name: str) -> dict | None:
    rows = _rows(con.execute(f"SELECT {_COLUMNS} FROM versions WHERE name = ?", [name]))
    return rows[0] if rows else None


def listing(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every version, oldest first: id, name, note, op_id (the last operation it includes),
    pairs (how many it keeps), created_at."""
    return _rows(con.execute(f"SELECT {_COLUMNS} FROM versions ORDER BY id"))


def _version_id(con: duckdb.DuckDBPyConnection, name: str) -> int:
    version = find(con, name)
    if version is None:
        known = ", ".join(v["name"] for v in listing(con)) or "none yet: `curator version create NAME`"
        raise UserError(f"no version {name!r} (versions: {known})")
    return version["id"]


def pair_ids(con: duckdb.DuckDBPyConnection, name: str) -> np.ndarray:
    """The pair ids a version keeps, ascending (int64). ValueError naming the version if unknown."""
    return con.execute(
        "SELECT pair_id FROM version_pairs WHERE version_id = ? ORDER BY pair_id", [_version_id(con, name)]
    ).fetchnumpy()["pair_id"]


def diff(con: duckdb.DuckDBPyConnection, a: str, b: str, map_id: int | None) -> dict:
    """What going from version a to version b added and removed: in all, per source, and per
    fine cluster of the map (clusters with a change only; pairs not on the map count as
    cluster None)."""
    params = {"a": _version_id(con, a), "b": _version_id(con, b)}
    members = """
        WITH a AS (SELECT pair_id FROM version_pairs WHERE version_id = $a),
             b AS (SELECT pair_id FROM version_pairs WHERE version_id = $b),
             d AS (SELECT coalesce(a.pair_id, b.pair_id) AS pair_id,
                          a.pair_id IS NOT NULL AS in_a, b.pair_id IS NOT NULL AS in_b
                   FROM a FULL JOIN b ON a.pair_id = b.pair_id)
    """
    counts = (
        "count(*) FILTER (WHERE in_a) AS a, count(*) FILTER (WHERE in_b) AS b, "
        "count(*) FILTER (WHERE in_b AND NOT in_a) AS added, "
        "count(*) FILTER (WHERE in_a AND NOT in_b) AS removed"
    )
    total = _rows(con.execute(f"{members} SELECT {counts} FROM d", params))[0]
    by_source = _rows(
        con.execute(
            f"{members} SELECT p.source, {counts} FROM d JOIN pairs p ON p.id = d.pair_id "
            "GROUP BY p.source ORDER BY removed + added DESC, p.source",
            params,
        )
    )
    by_cluster = (
        []
        if map_id is None
        else _rows(
            con.execute(
                f"""{members}
        SELECT mp.cluster, c.label AS topic, {counts}
        FROM d LEFT JOIN map_points mp ON mp.pair_id = d.pair_id AND mp.map_id = $map
        LEFT JOIN clusters c ON c.map_id = $map AND c.level = 'fine' AND c.id = mp.cluster
        GROUP BY ALL HAVING added + removed > 0
        ORDER BY removed + added DESC, mp.cluster NULLS LAST""",
                {**params, "map": map_id},
            )
        )
    )
    return {
        "from": a,
        "to": b,
        "pairs_from": total["a"],
        "pairs_to": total["b"],
        "added": total["added"],
        "removed": total["removed"],
        "by_source": by_source,
        "by_cluster": by_cluster,
    }
