"""The blob report: the map's fine and coarse clusters and the sources, ranked by how
homogeneous and how harmful they look (curator.blobs), worst first. A coarse cluster lists its
fine parts, so that a family deleted as one (a dataset's templates, a set of canned answers)
is found whole. It reads and writes nothing of its own; it computes the quality signals first
when some pair has none."""

from __future__ import annotations

import json

import numpy as np

from curator import blobs
from curator.signals import blob_flags
from jobs.duplicates import ensure_signals, find_map
from jobs.runner import Progress, no_progress
from storage import blobs as blob_rows
from storage import embeddings as vector_rows
from storage.db import Database


def blob_report(
    db: Database,
    *,
    map_name: str | None = None,
    progress: Progress = no_progress,
) -> list[dict]:
    """[{kind: cluster|coarse|source, id|name, label, size, score, reasons, metrics
    [, top_sources][, parent (a fine cluster's coarse cluster)][, parts (a coarse cluster's fine
    clusters: id, label, size, score, worst first)]}], worst (highest score) first."""
    with db.reading() as con:
        chosen = find_map(con, map_name)
    ensure_signals(db, progress)
    with db.reading() as con:
        groups = blob_rows.group_counts(con, chosen.id)
        sample = blob_rows.samples(con, chosen.id, blobs.VECTOR_SAMPLE, blobs.SAMPLE)
        vector_ids, vectors = vector_rows.load_vectors(con, chosen.set_id, np.unique(sample["id"]))
    where = np.searchsorted(vector_ids, sample["id"]).clip(0, max(len(vector_ids) - 1, 0))
    position = np.where(vector_ids[where] == sample["id"], where, -1) if len(vector_ids) else where - 1
    members = _slices(sample["kind"], sample["key"])
    ranked = []
    for done, group in enumerate(groups):
        progress(done, len(groups), f"measuring {group['kind']} {group['key']}")
        rows = members.get((group["kind"], group["key"]), slice(0, 0))
        texts = [k for k in range(rows.start, rows.stop) if sample["prompt"][k] is not None]
        found = position[rows]
        measures = blobs.measure(
            group["size"],
            vectors[found[found >= 0]],
            [sample["prompt"][k] for k in texts],
            [sample["response"][k] for k in texts],
            (group["q1"], group["q3"]),
            {name: group[name] for name in blob_flags()},
        )
        score, reasons = blobs.score(measures)
        entry = {"kind": group["kind"]}
        entry.update({"name": group["key"]} if group["kind"] == "source" else {"id": int(group["key"])})
        # Model-based scores are shown beside the measures, not weighed into the score: most
        # databases have none, and the ranking should not change with whether they were run.
        quality = {name: None if group[name] is None else round(group[name], 4) for name in ("ifd_mean", "judge_mean")}
        entry.update(
            label=group["label"],
            size=group["size"],
            score=score,
            reasons=reasons,
            metrics={**_metrics(measures), **quality},
        )
        if group["kind"] != "source":
            entry["top_sources"] = json.loads(group["top_sources"])
        if group["kind"] == "cluster":
            entry["parent"] = group["parent"]
        ranked.append(entry)
    ranked.sort(key=lambda e: (-e["score"], e["kind"], e.get("id", 0), e.get("name", "")))
    for entry in ranked:
        if entry["kind"] == "coarse":
            entry["parts"] = [
                {key: part[key] for key in ("id", "label", "size", "score")}
                for part in ranked
                if part["kind"] == "cluster" and part["parent"] == entry["id"]
            ]
    return ranked


def _slices(kinds: list[str], keys: list[str]) -> dict[tuple[str, str], slice]:
    """{(kind, key): rows} of sample rows sorted by kind and key."""
    pairs = list(zip(kinds, keys))
    starts = [k for k in range(len(pairs)) if k == 0 or pairs[k] != pairs[k - 1]]
    return {pairs[s]: slice(s, e) for s, e in zip(starts, starts[1:] + [len(pairs)])}


def _metrics(m: blobs.GroupMeasures) -> dict:
    return {
        "mean_similarity": None if m.similarity is None else round(m.similarity, 4),
        "length_spread": round(m.length_spread, 4),
        "response_distinct_ngrams": round(m.response_distinct, 4),
        "prompt_distinct_ngrams": round(m.prompt_distinct, 4),
        "prompt_phrase": m.prompt_phrase,
        "prompt_phrase_share": round(m.prompt_phrase_share, 4),
        **{name: round(m.shares[name], 4) for name in blob_flags()},
    }
