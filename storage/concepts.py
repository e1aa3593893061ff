"""Concepts, their labelled pairs and scores, and the concept_NAME columns of pairs_view.

pairs_view is pairs_view_base plus one column per concept. It is rebuilt (storage.views)
whenever a concept is created or deleted; names are checked identifiers (curator.concepts.NAME)
and concept ids integers, so nothing a user typed is spliced into the view's SQL unchecked.
"""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa

from curator.errors import UserError
from storage import views

COLUMN_PREFIX = views.CONCEPT_PREFIX


def names(con: duckdb.DuckDBPyConnection) -> list[str]:
    return [row[0] for row in con.execute("SELECT name FROM concepts ORDER BY name").fetchall()]


def columns(con: duckdb.DuckDBPyConnection) -> list[str]:
    """pairs_view's concept columns."""
    return [COLUMN_PREFIX + name for name in names(con)]


def find(con: duckdb.DuckDBPyConnection, name: str) -> dict | None:
    cursor = con.execute("SELECT * FROM concepts WHERE name = ?", [name])
    row = cursor.fetchone()
    if row is None:
        return None
    found = dict(zip([d[0] for d in cursor.description], row))
    return found | {"params": json.loads(found["params"])}


def listing(con: duckdb.DuckDBPyConnection) -> list[dict]:
    """Every concept with its labels, quality and how many pairs score at or above its threshold."""
    cursor = con.execute(
        """
        SELECT c.name, c.set_id, s.model, s.field, c.positives, c.negatives, c.cv_precision, c.cv_recall,
               c.threshold, (SELECT count(*) FROM concept_scores x WHERE x.concept_id = c.id
                                                                  AND x.score >= c.threshold) AS members,
               (SELECT count(*) FROM concept_scores x WHERE x.concept_id = c.id) AS scored, c.created_at
        FROM concepts c JOIN embedding_sets s ON s.id = c.set_id ORDER BY c.name
        """
    )
    names_ = [d[0] for d in cursor.description]
    return [dict(zip(names_, row)) for row in cursor.fetchall()]


def delete(con: duckdb.DuckDBPyConnection, name: str) -> bool:
    """Remove a concept, its labels and scores, and its column (inside the caller's transaction)."""
    row = con.execute("SELECT id FROM concepts WHERE name = ?", [name]).fetchone()
    if row is None:
        return False
    for table in ("concept_scores", "concept_labels"):
        con.execute(f"DELETE FROM {table} WHERE concept_id = ?", [row[0]])
    con.execute("DELETE FROM concepts WHERE id = ?", [row[0]])
    views.refresh_pairs_view(con)
    return True


def save(
    con: duckdb.DuckDBPyConnection,
    name: str,
    set_id: int,
    params: dict,
    job_id: int,
    labelled_ids: np.ndarray,
    labels: np.ndarray,
    cv_precision: float | None,
    cv_recall: float | None,
    threshold: float,
    scored_ids: np.ndarray,
    scores: np.ndarray,
) -> int:
    """Store a concept (replacing one of the same name), inside the caller's transaction."""
    delete(con, name)
    concept_id = con.execute(
        "INSERT INTO concepts (name, set_id, params, positives, negatives, cv_precision, cv_recall, threshold, "
        "job_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
        [
            name,
            set_id,
            json.dumps(params, sort_keys=True),
            int(labels.sum()),
            int((~labels).sum()),
            cv_precision,
            cv_recall,
            threshold,
            job_id,
        ],
    ).fetchone()[0]
    con.register(
        "concept_batch",
        pa.table({"pair_id": pa.array(labelled_ids, pa.int64()), "label": pa.array(labels, pa.bool_())}),
    )
    con.register(
        "score_batch", pa.table({"pair_id": pa.array(scored_ids, pa.int64()), "score": pa.array(scores, pa.float32())})
    )
    try:
        con.execute("INSERT INTO concept_labels SELECT ?, pair_id, label FROM concept_batch", [concept_id])
        con.execute("INSERT INTO concept_scores SELECT ?, pair_id, score FROM score_batch", [concept_id])
    finally:
        con.unregister("concept_batch")
        con.unregister("score_batch")
    views.refresh_pairs_view(con)
    return concept_id


def embedding_set(con: duckdb.DuckDBPyConnection, field: str | None, map_name: str | None) -> tuple[int, str, str]:
    """(set id, model, field) a concept classifies: the vectors of a map (default: the default
    map), or with `field` the set of that field (the map's model first)."""
    row = con.execute(
        "SELECT set_id FROM maps WHERE name = ?" if map_name else "SELECT set_id FROM maps WHERE is_default",
        [map_name] if map_name else [],
    ).fetchone()
    if map_name and row is None:
        raise UserError(f"no map {map_name!r}")
    map_set = row[0] if row else None
    sets = con.execute("SELECT id, model, field FROM embedding_sets ORDER BY id = ? DESC, id", [map_set]).fetchall()
    chosen = next((s for s in sets if (s[2] == field if field else s[0] == map_set)), None)
    if chosen is None:
        if field:
            raise UserError(f"no {field} embeddings yet: run `curator embed --field {field}`")
        raise UserError("no map yet to take embeddings from: run `curator map` (or give --field)")
    return chosen
