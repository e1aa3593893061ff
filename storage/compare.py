"""What `curator compare` reads and writes: the reserved selections as versions, the prompts
that must stay out of training, and the comparisons recorded as jobs."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pyarrow as pa

from curator.errors import UserError
from storage import versions as version_rows

# Names `curator compare` accepts besides versions: selections of the pairs as they are now.
RESERVED = {
    "@all": "every pair ever ingested, deleted ones too",
    "@live": "the pairs not deleted now",
}
_SNAPSHOT_NOTE = "curator compare: {what} (remade when that changes)"


def snapshot(con: duckdb.DuckDBPyConnection, name: str) -> dict:
    """The version that holds reserved selection `name` as it is now. A comparison exports and
    names versions, so the selection is kept as one (`version diff @all v1` works too); it is
    remade, under a new id, when the pairs it would hold have changed since. Call inside a write
    transaction."""
    note = _SNAPSHOT_NOTE.format(what=RESERVED[name])
    include_deleted = name == "@all"
    existing = version_rows.find(con, name)
    if existing is not None and existing["note"] != note:
        raise UserError(
            f"version {name!r} was made by hand; {name} is reserved by curator compare "
            f"({RESERVED[name]}): rename that version to use it"
        )
    where = "" if include_deleted else "WHERE deleted_op IS NULL"
    now = con.execute(f"SELECT id FROM pairs {where} ORDER BY id").fetchnumpy()["id"]
    if existing is not None and np.array_equal(version_rows.pair_ids(con, name), now):
        return existing
    if existing is not None:
        con.execute("DELETE FROM version_pairs WHERE version_id = ?", [existing["id"]])
        con.execute("DELETE FROM versions WHERE id = ?", [existing["id"]])
    made = version_rows.create(con, name, note)  # the kept pairs
    if include_deleted:
        con.execute("INSERT INTO version_pairs SELECT ?, id FROM pairs WHERE deleted_op IS NOT NULL", [made["id"]])
        con.execute(
            "UPDATE versions SET pairs = (SELECT count(*) FROM version_pairs WHERE version_id = $v) WHERE id = $v",
            {"v": made["id"]},
        )
    return version_rows.find(con, name)


def leak_prompt_hashes(con: duckdb.DuckDBPyConnection, prompts: list[str]) -> np.ndarray:
    """The normalized-prompt hashes (pairs.prompt_hash) that a model tested on `prompts` must not
    train on: theirs, and those of every pair in a duplicate set (latest `curator duplicates`
    run) with a pair of one of these prompts, as the export's leak-free split groups them."""
    con.register("heldout_prompts", pa.table({"text": pa.array(prompts, pa.string())}))
    try:
        return con.execute("""
            WITH held AS (SELECT DISTINCT md5_number_lower(normalize_text(text)) AS hash FROM heldout_prompts),
                 latest AS (SELECT * FROM duplicates WHERE dup_group IS NOT NULL
                                                     AND run_id = (SELECT max(run_id) FROM duplicates)),
                 sets AS (SELECT DISTINCT d.dup_group FROM latest d JOIN pairs p ON p.id = d.pair_id
                          JOIN held ON held.hash = p.prompt_hash)
            SELECT hash FROM held
            UNION
            SELECT p.prompt_hash FROM latest d JOIN sets USING (dup_group) JOIN pairs p ON p.id = d.pair_id
            ORDER BY 1""").fetchnumpy()["hash"]
    finally:
        con.unregister("heldout_prompts")


def finished(con: duckdb.DuckDBPyConnection, limit: int = 5) -> list[dict]:
    """The latest finished comparisons, newest first: job id, params (versions, options, out
    directory), counts (the table's rows), finished_at."""
    rows = con.execute(
        "SELECT id, params, counts, finished_at FROM jobs WHERE kind = 'compare' "
        "AND status = 'done' ORDER BY id DESC LIMIT ?",
        [limit],
    ).fetchall()
    return [
        {
            "id": job_id,
            "params": json.loads(params),
            "counts": json.loads(counts) if counts else {},
            "finished_at": finished_at,
        }
        for job_id, params, counts, finished_at in rows
    ]
