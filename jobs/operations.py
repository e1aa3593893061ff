"""Curation operations end to end: resolve a selector to pairs, tag/untag/delete/restore them,
undo, export and replay the log, snapshot versions. The CLI and the web app call these.

Each function takes the database path and opens (and closes) its own connections, because a
`--where` predicate must run on a read-only connection, and DuckDB will not open one beside a
read-write connection to the same file in one process. Other selectors are resolved inside
the write transaction, so the pairs chosen and the pairs changed are the same snapshot.
Operations are short, so they are recorded in the operations log, not as jobs. Each waits up
to OPERATION_WAIT seconds for a job's short write to end (jobs hold the file only for moments).
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import numpy as np

import storage
from curator import embedding
from curator.errors import UserError
from curator.selection import Selector, points_in_polygon, top_k
from storage import embeddings as vector_rows
from storage import maps as map_rows
from storage import operations as op_rows
from storage import versions as version_rows
from storage.operations import Operation

OPERATION_WAIT = 30.0
FAST_PREFIX = "fast:"  # how embedding sets name model2vec models distilled from a model


def _map(con: duckdb.DuckDBPyConnection, name: str | None) -> map_rows.MapRow:
    chosen = map_rows.find(con, name) if name else map_rows.default(con)
    if chosen is None:
        raise UserError(
            f"no map {name!r} (`curator map --name {name}` builds it)"
            if name
            else "this selector needs a map: run `curator map` first"
        )
    return chosen


@functools.lru_cache(maxsize=2)
def _encoder(model: str) -> embedding.Encoder:
    """The encoder that made a set's vectors, loaded once per process (the web app searches often)."""
    if model.startswith(FAST_PREFIX):
        return embedding.load_encoder(model[len(FAST_PREFIX) :], fast=True)
    return embedding.load_encoder(model)


def resolve(con: duckdb.DuckDBPyConnection, selector: Selector) -> np.ndarray:
    """The ids of every pair the selector chooses (deleted ones too: restore needs them).
    `where` selectors must come with a storage.connect_read_only connection."""
    kind = selector.kind
    if kind == "where":
        return op_rows.where_ids(con, selector.where)
    if kind == "source":
        return op_rows.source_ids(con, selector.source)
    if kind == "tag":
        return op_rows.tag_ids(con, selector.tag)
    if kind == "ids":
        return selector.ids
    chosen_map = _map(con, selector.map)
    if kind == "cluster":
        return op_rows.cluster_ids(con, chosen_map.id, selector.cluster, selector.level)
    if kind == "polygon":
        xs, ys = zip(*selector.polygon)
        points = op_rows.map_coordinates(con, chosen_map.id, (min(xs), min(ys), max(xs), max(ys)))
        return points["pair_id"][points_in_polygon(points["x"], points["y"], selector.polygon)]
    # similar_to: cosine over the vectors of the map's points, with the model that made them.
    encoder = _encoder(op_rows.embedding_model(con, chosen_map.set_id))
    ids, vectors = vector_rows.load_vectors(con, chosen_map.set_id, op_rows.map_pair_ids(con, chosen_map.id))
    query = encoder.encode([selector.similar_to])[0]
    return ids[top_k(vectors, query, selector.top)]


def select(db_path: str | os.PathLike, selector: dict | Selector) -> np.ndarray:
    """Ids of the pairs a selector chooses, read-only (similar_to: best match first)."""
    selector = Selector.from_dict(selector)
    con = storage.connect_read_only(db_path, wait=OPERATION_WAIT)
    try:
        return resolve(con, selector)
    finally:
        con.close()


def preview(db_path: str | os.PathLike, kind: str, selector: dict | Selector, tag: str | None = None) -> dict:
    """--dry-run: how many pairs the selector chooses and how many `kind` would change, by
    source and by cluster of the selector's map (or the default map)."""
    selector = Selector.from_dict(selector)
    con = storage.connect_read_only(db_path, wait=OPERATION_WAIT)
    try:
        ids = resolve(con, selector)
        shown_map = map_rows.find(con, selector.map) if selector.map else map_rows.default(con)
        return {
            "kind": kind,
            "tag": tag,
            "selector": selector.describe(),
            **op_rows.preview(con, kind, ids, tag, shown_map.id if shown_map else None),
        }
    finally:
        con.close()


def apply(
    db_path: str | os.PathLike,
    kind: str,
    selector: dict | Selector,
    *,
    tag: str | None = None,
    reason: str | None = None,
) -> Operation:
    """Tag, untag, delete (soft) or restore the selected pairs; one logged, undoable operation."""
    selector = Selector.from_dict(selector)
    chosen = select(db_path, selector) if selector.kind == "where" else None
    con = storage.connect(db_path, wait=OPERATION_WAIT)
    try:
        con.begin()
        ids = chosen if chosen is not None else resolve(con, selector)
        op = op_rows.apply(con, kind, ids, selector.describe(), tag=tag, reason=reason)
        con.commit()
        return op
    finally:
        con.close()


def undo(db_path: str | os.PathLike, op_id: int | None = None) -> Operation:
    """Revert one operation (default: the latest one not undone) and log the undo.

    Refused while a later operation of the same family (delete/restore, or tag/untag of the
    same tag) that changed some of the same pairs still stands: undo those first. So an undo
    always restores exactly the state its operation found.
    """
    con = storage.connect(db_path, wait=OPERATION_WAIT)
    try:
        con.begin()
        target = op_rows.get(con, op_id) if op_id is not None else op_rows.last_undoable(con)
        if target is None:
            raise UserError(f"no operation {op_id}" if op_id is not None else "nothing to undo")
        op = op_rows.undo(con, target, {})
        con.commit()
        return op
    finally:
        con.close()


def log(db_path: str | os.PathLike) -> list[dict]:
    """The operations log, oldest first: id, kind, selector, tag, reason, count, undoes, undone_by, time."""
    con = storage.connect_read_only(db_path, wait=OPERATION_WAIT)
    try:
        return [asdict(op) for op in op_rows.listing(con)]
    finally:
        con.close()


def export_log(db_path: str | os.PathLike, path: str | os.PathLike) -> int:
    """Write the log as JSON Lines, one operation per line with the ids of the pairs it changed
    (`pair_ids`). Pair ids are stable across fresh ingests of the same files, so `replay` can
    apply the log to another database. Returns the number of operations written."""
    con = storage.connect_read_only(db_path, wait=OPERATION_WAIT)
    target = Path(path)
    partial = target.with_name(target.name + ".partial")
    try:
        operations = op_rows.listing(con)
        with open(partial, "w", encoding="utf-8") as out:
            for op in operations:
                line = {
                    **asdict(op),
                    "time": op.time.isoformat(),
                    "pair_ids": op_rows.changed_pair_ids(con, op.id).tolist(),
                }
                out.write(json.dumps(line, ensure_ascii=False) + "\n")
    finally:
        con.close()
    os.replace(partial, target)
    return len(operations)


@dataclass
class ReplayReport:
    """One entry per replayed operation: logged id -> new id, kind, pairs logged vs changed here."""

    steps: list[dict] = field(default_factory=list)

    @property
    def mismatches(self) -> list[dict]:
        return [s for s in self.steps if s["logged"] != s["changed"]]


def read_log(path: str | os.PathLike) -> list[dict]:
    entries = []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                entry["pair_ids"] = np.asarray(entry["pair_ids"], dtype=np.int64)
                if entry["kind"] not in (*op_rows.KINDS, op_rows.UNDO):
                    raise UserError(f"unknown kind {entry['kind']!r}")
            except (ValueError, KeyError, TypeError) as err:
                raise UserError(f"{path}:{number}: not an operations log line ({err})") from None
            entries.append(entry)
    return entries


def replay(db_path: str | os.PathLike, path: str | os.PathLike) -> ReplayReport:
    """Apply an exported log to this database, in one transaction: each operation to exactly
    the pairs it changed where it was recorded, each undo to the replayed operation it undid.
    Refused, changing nothing, when the log names pairs this database does not have."""
    entries = read_log(path)
    con = storage.connect(db_path, wait=OPERATION_WAIT)
    try:
        every_id = np.unique(np.concatenate([e["pair_ids"] for e in entries])) if entries else np.zeros(0, np.int64)
        missing = op_rows.missing_ids(con, every_id)
        if len(missing):
            raise UserError(
                f"{len(missing):,} pair id(s) of {path} are not in this database (first: "
                f"{missing[0]}): replay onto a database that ingested the same files"
            )
        report, new_ids = ReplayReport(), {}
        con.begin()
        for entry in entries:
            origin = {"replay": {"op": entry["id"], "selector": entry["selector"]}}
            if entry["kind"] == op_rows.UNDO:
                if entry["undoes"] not in new_ids:
                    raise UserError(
                        f"{path}: operation {entry['id']} undoes {entry['undoes']}, which is not in the log"
                    )
                op = op_rows.undo(con, op_rows.get(con, new_ids[entry["undoes"]]), origin)
            else:
                op = op_rows.apply(
                    con, entry["kind"], entry["pair_ids"], origin, tag=entry.get("tag"), reason=entry.get("reason")
                )
            new_ids[entry["id"]] = op.id
            report.steps.append(
                {"from": entry["id"], "to": op.id, "kind": op.kind, "logged": entry["count"], "changed": op.count}
            )
        con.commit()
        return report
    finally:
        con.close()


def create_version(db_path: str | os.PathLike, name: str, note: str | None = None) -> dict:
    """Snapshot the pairs kept now as version `name`: id, name, note, op_id, pairs, created_at."""
    con = storage.connect(db_path, wait=OPERATION_WAIT)
    try:
        con.begin()
        made = version_rows.create(con, name, note)
        con.commit()
        return made
    finally:
        con.close()


def diff_versions(db_path: str | os.PathLike, a: str, b: str, map_name: str | None = None) -> dict:
    """What version b added and removed relative to a, by source and by cluster of the map."""
    con = storage.connect_read_only(db_path, wait=OPERATION_WAIT)
    try:
        shown_map = _map(con, map_name) if map_name else map_rows.default(con)
        return {
            "map": shown_map.name if shown_map else None,
            **version_rows.diff(con, a, b, shown_map.id if shown_map else None),
        }
    finally:
        con.close()
