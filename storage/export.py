"""What an export reads: the pairs to export with what the split needs, contamination
candidates, the records themselves as JSON lines (built by DuckDB), and the manifest's facts.

The records are serialized in SQL (to_json over a struct shaped after curator.training_set.SHAPES)
and fetched as Arrow batches whose string buffers are written to the file as they are: no
Python object per record. Measured on 500k pairs (bench/export.py), the whole export job,
seeded order, split and sha256 included, costs ~1.4x the CPU of a plain DuckDB
COPY ... (FORMAT json) of the same columns.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from curator.errors import UserError
from curator.training_set import EMPTY, PROMPT, RESPONSE, SOURCE, Turns

_DEFAULT_MAP_POINTS = (
    "SELECT mp.pair_id, mp.cluster FROM map_points mp JOIN maps m ON m.id = mp.map_id AND m.is_default"
)


@contextmanager
def _registered(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> Iterator[None]:
    con.register(name, table)
    try:
        yield
    finally:
        con.unregister(name)


def selection(con: duckdb.DuckDBPyConnection, pair_ids: np.ndarray | None) -> dict[str, np.ndarray]:
    """The pairs to export: `pair_ids` (a version's), else every pair not deleted. Per pair, in
    id order: id, prompt_hash, dup_group / in_dup_group (the latest `curator duplicates` run),
    cluster / on_map (the default map), source_code (index into the returned `sources`),
    multi_turn (a stored conversation)."""
    query = f"""
        SELECT p.id, p.prompt_hash, coalesce(d.dup_group, 0) AS dup_group,
               d.dup_group IS NOT NULL AS in_dup_group,
               coalesce(mp.cluster, 0) AS cluster, mp.cluster IS NOT NULL AS on_map,
               p.source, p.messages IS NOT NULL AS multi_turn
        FROM pairs p
        {"JOIN chosen_ids c ON c.id = p.id" if pair_ids is not None else ""}
        LEFT JOIN duplicates d ON d.pair_id = p.id AND d.dup_group IS NOT NULL
                               AND d.run_id = (SELECT max(run_id) FROM duplicates)
        LEFT JOIN ({_DEFAULT_MAP_POINTS}) mp ON mp.pair_id = p.id
        {"" if pair_ids is not None else "WHERE p.deleted_op IS NULL"}
        ORDER BY p.id
    """
    if pair_ids is None:
        table = con.execute(query).to_arrow_table()
    else:
        with _registered(con, "chosen_ids", pa.table({"id": pa.array(pair_ids, pa.int64())})):
            table = con.execute(query).to_arrow_table()
    sources = pc.dictionary_encode(table.column("source")).combine_chunks()
    result = {
        name: table.column(name).to_numpy()
        for name in ("id", "prompt_hash", "dup_group", "in_dup_group", "cluster", "on_map", "multi_turn")
    }
    result["source_code"] = sources.indices.to_numpy(zero_copy_only=False)
    result["sources"] = np.array(sources.dictionary.to_pylist(), dtype=object)
    return result


def prompt_hashes(con: duckdb.DuckDBPyConnection, texts: list[str]) -> np.ndarray:
    """The pairs.prompt_hash that prompts with these texts get at ingest (normalized text)."""
    with _registered(
        con,
        "texts",
        pa.table({"position": pa.array(np.arange(len(texts)), pa.int64()), "text": pa.array(texts, pa.string())}),
    ):
        return con.execute(
            "SELECT md5_number_lower(normalize_text(text)) AS h FROM texts ORDER BY position"
        ).fetchnumpy()["h"]


def head_tail_candidates(
    con: duckdb.DuckDBPyConnection, pair_ids: np.ndarray, texts: list[str], key_chars: int = 24, max_chars: int = 64
) -> np.ndarray:
    """Pairs among pair_ids whose normalized prompt begins with the beginning of some text, or
    ends with its end: the cheap first pass of the contamination check where no stored vector
    exists. Embedding a prompt costs ~7 ms on 2 cores (an hour for 500k); this pass costs
    ~7 µs a pair (3.7 CPU-s for 500k, mostly reading the prompts). A text's beginning and end
    are half its normalized length, at least key_chars and at most max_chars characters.
    Equality of the first / last key_chars characters is a hash join; starts_with/ends_with
    then checks the longer key on the few rows it yields. What it misses: a paraphrase that
    changes both the beginning and the end of an eval prompt."""
    query = """
        WITH t AS (SELECT normalize_text(text) AS n FROM texts),
             k AS (SELECT left(n, least($max, greatest($key, length(n) // 2))) AS head,
                          right(n, least($max, greatest($key, length(n) // 2))) AS tail FROM t),
             p AS (SELECT p.id, normalize_text(left(p.prompt, 160)) AS head,
                          normalize_text(right(p.prompt, 160)) AS tail
                   FROM pairs p JOIN chosen_ids c ON c.id = p.id)
        SELECT p.id FROM p JOIN k ON left(p.head, $key) = left(k.head, $key)
        WHERE starts_with(p.head, k.head)
        UNION
        SELECT p.id FROM p JOIN k ON right(p.tail, $key) = right(k.tail, $key)
        WHERE ends_with(p.tail, k.tail)
        ORDER BY id
    """
    with (
        _registered(con, "texts", pa.table({"text": pa.array(texts, pa.string())})),
        _registered(con, "chosen_ids", pa.table({"id": pa.array(pair_ids, pa.int64())})),
    ):
        return con.execute(query, {"key": key_chars, "max": max_chars}).fetchnumpy()["id"]


def prompt_vector_set(con: duckdb.DuckDBPyConnection, model: str) -> int | None:
    """The embedding set holding `model`'s vectors of prompts, if one was made."""
    row = con.execute("SELECT id FROM embedding_sets WHERE model = ? AND field = 'prompt'", [model]).fetchone()
    return row[0] if row else None


def texts_of(con: duckdb.DuckDBPyConnection, pair_ids: np.ndarray) -> dict[int, tuple[str, str]]:
    """{pair id: (prompt, response)}, for the few pairs a report shows."""
    with _registered(con, "chosen_ids", pa.table({"id": pa.array(pair_ids, pa.int64())})):
        rows = con.execute("SELECT p.id, p.prompt, p.response FROM pairs p JOIN chosen_ids c ON c.id = p.id").fetchall()
    return {row[0]: (row[1], row[2]) for row in rows}


# --- records -------------------------------------------------------------------------------------

_TEXT_COLUMNS = {PROMPT: "p.prompt", RESPONSE: "p.response", SOURCE: "p.source", EMPTY: "''"}
# The stored conversation, or the pair's single exchange, as a list of {role, content}.
_TURNS = (
    "CASE WHEN p.messages IS NULL "
    "THEN [{'role': 'user', 'content': p.prompt}, {'role': 'assistant', 'content': p.response}] "
    'ELSE from_json(p.messages, \'[{"role": "VARCHAR", "content": "VARCHAR"}]\') END'
)


def _literal(text: str) -> str:
    """A SQL string literal of one of curator's own constants (format keys and role names; no
    user text ever comes through here)."""
    return "'" + text.replace("'", "''") + "'"


def _identifier(text: str) -> str:
    return '"' + text.replace('"', '""') + '"'


def _value_sql(value: object) -> str:
    if isinstance(value, Turns):
        renamed = " ".join(f"WHEN {_literal(ours)} THEN {_literal(theirs)}" for ours, theirs in value.roles)
        turn = (
            f"struct_pack({_identifier(value.role_key)} := CASE t.role {renamed} END, "
            f"{_identifier(value.text_key)} := t.content)"
        )
        return f"list_transform({_TURNS}, t -> {turn})"
    return _TEXT_COLUMNS[value]


def record_sql(shape: dict[str, object]) -> str:
    """The SQL expression of one record of the shape, as a JSON line ending in a newline."""
    fields = ", ".join(f"{_identifier(key)} := {_value_sql(value)}" for key, value in shape.items())
    return f"to_json(struct_pack({fields})) || chr(10)"


def record_lines(
    con: duckdb.DuckDBPyConnection, shape: dict[str, object], pair_ids: np.ndarray, batch_rows: int = 32_768
) -> Iterator[pa.Array]:
    """Arrow string arrays of JSON lines, one per pair, in the order of pair_ids."""
    order = pa.table({"id": pa.array(pair_ids, pa.int64()), "position": pa.array(np.arange(len(pair_ids)), pa.int64())})
    query = f"SELECT {record_sql(shape)} AS line FROM pairs p JOIN export_order o ON o.id = p.id ORDER BY o.position"
    # A cursor of its own: the caller records progress on `con` between batches, and any query
    # on the connection that streams a result ends that stream.
    cursor = con.cursor()
    try:
        with _registered(cursor, "export_order", order):
            for batch in cursor.execute(query).to_arrow_reader(batch_rows):
                yield batch.column(0)
    finally:
        cursor.close()


# --- the manifest's facts ------------------------------------------------------------------------


def counts(con: duckdb.DuckDBPyConnection, pair_ids: np.ndarray, split: np.ndarray) -> dict:
    """Pairs per split by source and by fine cluster of the default map ("none": not on it)."""
    table = pa.table(
        {"id": pa.array(pair_ids, pa.int64()), "split": pa.array(np.where(split, "val", "train"), pa.string())}
    )
    with _registered(con, "export_split", table):
        by_source = con.execute(
            "SELECT p.source, s.split, count(*) FROM export_split s JOIN pairs p ON p.id = s.id "
            "GROUP BY ALL ORDER BY ALL"
        ).fetchall()
        by_cluster = con.execute(
            f"SELECT coalesce(mp.cluster::VARCHAR, 'none'), s.split, count(*) FROM export_split s "
            f"LEFT JOIN ({_DEFAULT_MAP_POINTS}) mp ON mp.pair_id = s.id GROUP BY ALL ORDER BY ALL"
        ).fetchall()

    def nest(rows) -> dict:
        result: dict = {}
        for key, side, n in rows:
            result.setdefault(key, {"train": 0, "val": 0})[side] = n
        return result

    return {"by_source": nest(by_source), "by_cluster": nest(by_cluster)}


def operations(con: duckdb.DuckDBPyConnection, up_to: int | None) -> list[tuple]:
    """The operations log in id order (up to an operation id, for a version), without the
    columns that record when (created_at) or what happened to it later (undone_by)."""
    return con.execute(
        "SELECT * EXCLUDE (created_at, undone_by) FROM operations WHERE id <= coalesce(?, id) ORDER BY id", [up_to]
    ).fetchall()


def latest_run_params(con: duckdb.DuckDBPyConnection, table: str) -> dict | None:
    """params of the latest signals or duplicates run ({run, params}), None before any."""
    if table not in ("signal_runs", "duplicate_runs"):
        raise UserError(f"not a run table: {table}")
    row = con.execute(f"SELECT id, params FROM {table} ORDER BY id DESC LIMIT 1").fetchone()
    return None if row is None else {"run": row[0], "params": json.loads(row[1])}
