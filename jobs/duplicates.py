"""The duplicates job: exact and semantic duplicate sets, the member each keeps, conflicts.

Candidate pairs of pairs come from three places: equal normalized text (pair_hash), equal
normalized prompt (prompt_hash) and the k-NN search over the map's vectors. Each candidate is
then judged on both sides (curator.duplicates: vectors where the map or a sibling embedding
set of the same model has them, word sets where not), duplicates are linked into sets, and
each set keeps its best member by quality score. Deleted pairs take no part. The run's
parameters are recorded in duplicate_runs and its rows replace the previous run's. The
database is open only to read the pairs, vectors and the texts to compare, and to commit the
sets: the search and the judging run with the file closed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING

import duckdb
import numpy as np

from curator import duplicates as dedup
from curator.errors import UserError
from jobs.runner import Job, Progress, no_progress
from storage import duplicates as dup_rows
from storage import embeddings as vector_rows
from storage import maps as map_rows
from storage.db import Database

if TYPE_CHECKING:
    from jobs.ray_pool import RayCluster

_COSINE_CHUNK = 1 << 18  # edges whose vectors are gathered at once


@dataclass
class DuplicateReport:
    job_id: int
    run_id: int
    map: str
    field: str
    pairs: int  # pairs considered (not deleted)
    without_vectors: int  # of those, pairs with no vector in the map (placed later): exact checks only
    exact_groups: int
    semantic_groups: int
    pairs_in_groups: int
    not_kept: int  # pairs in a set that are not its kept member
    conflicts: int  # pairs with a near-identical prompt and a diverging answer
    seconds: float


def find_map(con: duckdb.DuckDBPyConnection, name: str | None) -> map_rows.MapRow:
    chosen = map_rows.find(con, name) if name else map_rows.default(con)
    if chosen is None:
        raise UserError(f"no map {name!r}" if name else "no map yet: run `curator map` first")
    return chosen


def ensure_signals(db: Database, progress: Progress) -> None:
    """Compute the quality signals first if some pair has none: the keep choice and the blob
    report read them."""
    with db.reading() as con:
        unsignalled = dup_rows.unsignalled_pairs(con)
    if unsignalled:
        # Imported here: the signals job loads a language identifier and a tokenizer that a
        # database whose signals are up to date does not need.
        from jobs.signals import compute_signals

        compute_signals(db, progress=progress)


def find_duplicates(
    db: Database,
    *,
    map_name: str | None = None,
    params: dedup.DuplicateParams | None = None,
    progress: Progress = no_progress,
    cluster: RayCluster | None = None,
) -> DuplicateReport:
    """`cluster`: run the k-NN search's cells on this Ray cluster (the same edges and sets)."""
    params = params or dedup.DuplicateParams()
    with db.reading() as con:
        chosen = find_map(con, map_name)
    ensure_signals(db, progress)
    started = time.perf_counter()
    job_params = {
        "map": chosen.name,
        "field": chosen.field,
        "set_id": chosen.set_id,
        "model": chosen.params.get("model"),
        **asdict(params),
        "search": {"exact_max": dedup.EXACT_MAX, "cell_size": dedup.CELL_SIZE, "probes": dedup.PROBES},
    }
    with Job(db, "duplicates", job_params, progress) as job:
        steps = 4
        job.report(0, steps, "loading pairs and vectors")
        with db.reading() as con:
            pairs = dup_rows.live_pairs(con)
            ids = pairs["id"]
            vector_ids, vectors = vector_rows.load_vectors(con, chosen.set_id, ids)
        row_of_vector = np.searchsorted(ids, vector_ids)
        vector_of = np.full(len(ids), -1, dtype=np.int64)
        vector_of[row_of_vector] = np.arange(len(vector_ids))
        # Exact duplicates have the same vectors: the first vector of each pair hash is searched.
        _, first = np.unique(pairs["pair_hash"][row_of_vector], return_index=True)
        searched = np.sort(first)

        job.report(1, steps, f"searching {len(searched):,} vectors for cosine >= {params.threshold}")
        i, j, cosine = dedup.near_pairs(
            vectors if len(searched) == len(vectors) else vectors[searched],
            params.threshold,
            params.neighbours,
            progress=lambda done, total, message: job.report(1, steps, message),
            mapper=cluster.map if cluster else None,
        )
        i, j, map_similarity = _candidates(
            row_of_vector[searched[i]], row_of_vector[searched[j]], cosine, pairs["pair_hash"], pairs["prompt_hash"]
        )
        missing = np.isnan(map_similarity)
        map_similarity[missing] = _cosines(vectors, vector_of[i[missing]], vector_of[j[missing]])

        job.report(2, steps, f"judging {len(i):,} candidate pairs")
        texts = _Texts(db, ids)
        prompt = _side(db, chosen, "prompt", pairs["prompt_hash"], i, j, map_similarity, ids, texts)
        response = _side(db, chosen, "response", pairs["response_hash"], i, j, map_similarity, ids, texts)
        duplicate, conflict = dedup.classify(
            map_similarity if chosen.field == "pair" else None, prompt, response, params
        )

        groups = dedup.number_groups(dedup.components(len(ids), i[duplicate], j[duplicate]), ids)
        kinds = dedup.group_kinds(groups, pairs["pair_hash"])
        penalty = dedup.quality_penalty({name: pairs[name] for name in dedup.penalties()}, len(ids))
        keep = dedup.keep_members(groups, penalty, pairs["words"], ids)
        conflicted = np.zeros(len(ids), dtype=bool)
        conflicted[i[conflict]] = conflicted[j[conflict]] = True

        job.report(3, steps, "saving")
        stored = (groups >= 0) | conflicted
        with db.writing() as con:
            run_id = dup_rows.replace(
                con,
                job.id,
                job_params,
                {
                    "pair_id": ids[stored],
                    "dup_group": groups[stored],
                    "dup_kind": kinds[stored],
                    "dup_keep": keep[stored],
                    "conflict": conflicted[stored],
                },
            )
        grouped = groups >= 0
        report = DuplicateReport(
            job.id,
            run_id,
            chosen.name,
            chosen.field,
            len(ids),
            int((vector_of < 0).sum()),
            len(np.unique(groups[grouped & (kinds == "exact")])),
            len(np.unique(groups[grouped & (kinds == "semantic")])),
            int(grouped.sum()),
            int((grouped & ~keep).sum()),
            int(conflicted.sum()),
            round(time.perf_counter() - started, 3),
        )
        job.counts = asdict(report)
        return report


def _candidates(
    knn_i: np.ndarray, knn_j: np.ndarray, knn_cosine: np.ndarray, pair_hash: np.ndarray, prompt_hash: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Distinct (i < j) edges from the k-NN search and from equal pair and prompt hashes, with
    the k-NN cosine where the search found the edge (NaN for the others)."""
    parts = [(knn_i, knn_j, knn_cosine)]
    for hashes in (pair_hash, prompt_hash):
        a, b = dedup.same_key_edges(hashes)
        parts.append((a, b, np.full(len(a), np.nan, dtype=np.float32)))
    i = np.concatenate([p[0] for p in parts])
    j = np.concatenate([p[1] for p in parts])
    similarity = np.concatenate([p[2] for p in parts])
    low, high = np.minimum(i, j), np.maximum(i, j)
    _, first = np.unique(low * len(pair_hash) + high, return_index=True)  # k-NN entries come first
    return low[first], high[first], similarity[first]


def _cosines(vectors: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Cosine of unit vectors a[e] and b[e] per edge; NaN where either row has no vector (-1)."""
    out = np.full(len(a), np.nan, dtype=np.float32)
    known = np.flatnonzero((a >= 0) & (b >= 0))
    for start in range(0, len(known), _COSINE_CHUNK):
        edges = known[start : start + _COSINE_CHUNK]
        out[edges] = np.einsum("ij,ij->i", vectors[a[edges]], vectors[b[edges]])
    return out


class _Texts:
    """Prompts and responses of the rows that need a textual comparison, fetched once."""

    def __init__(self, db: Database, ids: np.ndarray):
        self.db, self.ids, self.cache = db, ids, {}

    def of(self, field: str, rows: np.ndarray) -> dict[int, str]:
        missing = np.setdiff1d(rows, np.fromiter(self.cache, dtype=np.int64, count=len(self.cache)))
        if len(missing):
            with self.db.reading() as con:
                _, prompts, responses = vector_rows.pair_texts(con, self.ids[missing])
            self.cache.update(zip(missing.tolist(), zip(prompts, responses)))
        position = 0 if field == "prompt" else 1
        return {row: self.cache[row][position] for row in rows.tolist()}


def _side(
    db: Database,
    chosen: map_rows.MapRow,
    field: str,
    hashes: np.ndarray,
    i: np.ndarray,
    j: np.ndarray,
    map_similarity: np.ndarray,
    ids: np.ndarray,
    texts: _Texts,
) -> dedup.Side:
    """Equality and similarity of one side of each candidate: the map's cosine when the map
    embeds that side, a sibling set's cosine when the same model embedded it, else words."""
    same = hashes[i] == hashes[j]
    similarity = np.full(len(i), np.nan, dtype=np.float32)
    if chosen.field == field:
        similarity[:] = map_similarity
    else:
        with db.reading() as con:
            sibling = dup_rows.sibling_set(con, chosen.set_id, field)
            if sibling is not None:
                rows = np.unique(np.r_[i[~same], j[~same]])
                vector_ids, vectors = vector_rows.load_vectors(con, sibling, ids[rows])
        if sibling is not None:
            vector_of = np.full(len(ids), -1, dtype=np.int64)
            vector_of[np.searchsorted(ids, vector_ids)] = np.arange(len(vector_ids))
            unequal = np.flatnonzero(~same)
            similarity[unequal] = _cosines(vectors, vector_of[i[unequal]], vector_of[j[unequal]])
    by_vector = ~np.isnan(similarity)
    wordy = np.flatnonzero(~same & ~by_vector)
    if len(wordy):
        rows = np.unique(np.r_[i[wordy], j[wordy]])
        similarity[wordy] = dedup.text_similarity(texts.of(field, rows), i[wordy], j[wordy])
    return dedup.Side(same, similarity, by_vector)
