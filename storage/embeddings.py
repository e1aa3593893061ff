"""Embedding vectors: float32 .npy shards beside the database, indexed by a DuckDB table.

Measured on 1M x 384 float32 here: a DuckDB FLOAT[384] column took 48 s to write and 10 s to
read back into numpy; .npy shards take seconds both ways and can be memory-mapped. So the
vectors live in DIRECTORY/shard-NNNNNN.npy (one per committed batch) and `embeddings` maps
each pair to (shard, row). A shard is written before the transaction that registers it
commits; after a crash the unregistered file is simply overwritten by the next batch.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from curator.errors import UserError


def vectors_root(db_path: str | os.PathLike) -> Path:
    """Where a database keeps its vectors: curator.duckdb -> curator.duckdb.vectors/."""
    return Path(f"{db_path}.vectors")


def ensure_set(con: duckdb.DuckDBPyConnection, root: Path, model: str, field: str, dim: int) -> tuple[int, Path]:
    """The (id, directory) of the vectors that `model` made of `field`, created if new."""
    row = con.execute(
        "SELECT id, directory, dim FROM embedding_sets WHERE model = ? AND field = ?", [model, field]
    ).fetchone()
    if row is None:
        set_id = con.execute("SELECT nextval('embedding_set_id_seq')").fetchone()[0]
        directory = root / f"set-{set_id}"
        con.execute(
            "INSERT INTO embedding_sets (id, model, field, dim, directory) VALUES (?, ?, ?, ?, ?)",
            [set_id, model, field, dim, str(directory)],
        )
        return set_id, directory
    if row[2] != dim:
        raise UserError(f"{model} made {row[2]}-d vectors of {field} before and {dim}-d now")
    return row[0], Path(row[1])


def missing_pair_ids(con: duckdb.DuckDBPyConnection, set_id: int) -> np.ndarray:
    """Ids of pairs (deleted ones too: the map shows them greyed) without a vector in the set."""
    return con.execute(
        "SELECT id FROM pairs WHERE id NOT IN (SELECT pair_id FROM embeddings WHERE set_id = ?) ORDER BY id", [set_id]
    ).fetchnumpy()["id"]


def pair_count(con: duckdb.DuckDBPyConnection) -> int:
    """Pairs in the database, deleted ones too (each has a place on the map)."""
    return con.execute("SELECT count(*) FROM pairs").fetchone()[0]


def pair_texts(con: duckdb.DuckDBPyConnection, pair_ids: np.ndarray) -> tuple[np.ndarray, list[str], list[str]]:
    """(ids, prompts, responses) of these pairs, in the order given."""
    con.register(
        "wanted_ids",
        pa.table({"id": pa.array(pair_ids, pa.int64()), "position": pa.array(np.arange(len(pair_ids)), pa.int64())}),
    )
    try:
        result = con.execute(
            "SELECT p.id, p.prompt, p.response FROM pairs p JOIN wanted_ids w USING (id) ORDER BY w.position"
        ).to_arrow_table()
    finally:
        con.unregister("wanted_ids")
    return (result.column("id").to_numpy(), result.column("prompt").to_pylist(), result.column("response").to_pylist())


def write_shard(
    con: duckdb.DuckDBPyConnection, set_id: int, directory: Path, pair_ids: np.ndarray, vectors: np.ndarray
) -> int:
    """Store one batch of vectors; call inside the transaction that commits the batch."""
    shard = con.execute("SELECT coalesce(max(shard), 0) + 1 FROM embeddings WHERE set_id = ?", [set_id]).fetchone()[0]
    directory.mkdir(parents=True, exist_ok=True)
    path = _shard_path(directory, shard)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, np.ascontiguousarray(vectors, dtype=np.float32))
    os.replace(partial, path)
    con.register(
        "shard_rows",
        pa.table(
            {"pair_id": pa.array(pair_ids, pa.int64()), "row": pa.array(np.arange(len(pair_ids), dtype=np.int32))}
        ),
    )
    try:
        con.execute("INSERT INTO embeddings SELECT ?, pair_id, ?, row FROM shard_rows", [set_id, shard])
    finally:
        con.unregister("shard_rows")
    return shard


def load_vectors(
    con: duckdb.DuckDBPyConnection, set_id: int, pair_ids: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """(pair ids, vectors) of the set: all of them in id order, or those of pair_ids (in that order)."""
    directory = Path(con.execute("SELECT directory FROM embedding_sets WHERE id = ?", [set_id]).fetchone()[0])
    if pair_ids is None:
        index = con.execute(
            'SELECT pair_id, shard, "row" FROM embeddings WHERE set_id = ? ORDER BY pair_id', [set_id]
        ).fetchnumpy()
    else:
        con.register(
            "wanted_ids",
            pa.table(
                {"pair_id": pa.array(pair_ids, pa.int64()), "position": pa.array(np.arange(len(pair_ids)), pa.int64())}
            ),
        )
        try:
            index = con.execute(
                'SELECT e.pair_id, e.shard, e."row" FROM embeddings e JOIN wanted_ids w USING (pair_id) '
                "WHERE e.set_id = ? ORDER BY w.position",
                [set_id],
            ).fetchnumpy()
        finally:
            con.unregister("wanted_ids")
    ids, shards, rows = index["pair_id"], index["shard"], index["row"]
    if len(ids) == 0:
        return ids, np.zeros((0, 0), dtype=np.float32)
    vectors = None
    for shard in np.unique(shards):
        matrix = np.load(_shard_path(directory, int(shard)), mmap_mode="r")
        if vectors is None:
            vectors = np.empty((len(ids), matrix.shape[1]), dtype=np.float32)
        where = np.flatnonzero(shards == shard)
        vectors[where] = matrix[rows[where]]
    return ids, vectors


def _shard_path(directory: Path, shard: int) -> Path:
    return directory / f"shard-{shard:06d}.npy"
