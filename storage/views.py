"""pairs_view, the documented face of the data: pairs_view_base (storage.schema) plus the
columns that come and go with the data, rebuilt whenever they change:

- a column per signal flag registered after the schema was made (curator.signals.FLAGS; the
  signals job adds its column to `signals`, storage.signals.ensure_columns);
- a `concept_NAME` score column per concept (storage.concepts).

Names come from the `signals` table's own columns (checked identifiers when added) and from
concepts' checked names, and concept ids are integers: nothing a user typed is spliced in.
"""

from __future__ import annotations

import duckdb

from curator.concepts import check_name

CONCEPT_PREFIX = "concept_"
_KEYS = ("pair_id", "run_id")


def table_columns(con: duckdb.DuckDBPyConnection, table: str) -> list[str]:
    """A table's or view's columns, in order."""
    return [
        row[0]
        for row in con.execute(
            "SELECT column_name FROM duckdb_columns() WHERE table_name = ? ORDER BY column_index", [table]
        ).fetchall()
    ]


def refresh_pairs_view(con: duckdb.DuckDBPyConnection) -> None:
    base = set(table_columns(con, "pairs_view_base"))
    extra = [name for name in table_columns(con, "signals") if name not in base and name not in _KEYS]
    selected, joins = ["b.*"], []
    if extra:
        selected += [f'sx."{name}"' for name in extra]
        joins.append("LEFT JOIN signals sx ON sx.pair_id = b.id")
    for concept_id, name in con.execute("SELECT id, name FROM concepts ORDER BY name").fetchall():
        check_name(name)
        alias = f"c{int(concept_id)}"
        selected.append(f'{alias}.score AS "{CONCEPT_PREFIX}{name}"')
        joins.append(
            f"LEFT JOIN (SELECT pair_id, score FROM concept_scores WHERE concept_id = {int(concept_id)}) "
            f"{alias} ON {alias}.pair_id = b.id"
        )
    con.execute(
        f"CREATE OR REPLACE VIEW pairs_view AS SELECT {', '.join(selected)} FROM pairs_view_base b " + " ".join(joins)
    )
