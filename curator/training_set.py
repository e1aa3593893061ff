"""A training set: its records per format, the train/validation split, the contamination
(closest eval prompt) measure, the manifest.

Pure functions over records and numpy arrays; storage/export.py turns the record shapes
below into SQL, and jobs/export.py runs an export.

Record shapes (``SHAPES``), one JSON object per line:

- ``gpt4all``  ``{prompt, response, source}``
- ``alpaca``   ``{instruction, input, output}``: instruction = the prompt, input = "" (an
  ingested Alpaca input is already part of the prompt, joined by a blank line, and cannot be
  split off again reliably), output = the response.
- ``sharegpt`` ``{conversations: [{from, value}]}``, from = system | human | gpt.
- ``openai``   ``{messages: [{role, content}]}``, role = system | user | assistant.

Multi-turn pairs (``messages`` stored at ingest) are exported whole, system message and
earlier turns included, in sharegpt and openai; gpt4all and alpaca can hold one exchange
only, so they get the pair's prompt (the last user turn) and response (the final answer),
and the manifest counts how many conversations were flattened that way. Every format reads
back through `curator ingest` as the same pairs.

Split: pairs that are near-duplicates of each other (the same `dup_group` from `curator
duplicates`, or the same normalized prompt) form one group, and a group goes to one side
only. Groups are taken in a seeded order within each stratum (the cluster on the default
map, else the source), so every cluster is represented in validation in proportion.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

import numpy as np

from curator import __version__
from curator.errors import UserError

FORMATS: tuple[str, ...] = ("gpt4all", "alpaca", "sharegpt", "openai")

# What a record field holds: one of the pair's texts, a constant empty string, or the turns.
PROMPT, RESPONSE, SOURCE, EMPTY = "prompt", "response", "source", "empty"


@dataclass(frozen=True)
class Turns:
    """A list of {role_key: role, text_key: text} objects: the stored conversation, or the
    pair's single exchange. `roles` renames curator's roles (system, user, assistant)."""

    role_key: str
    text_key: str
    roles: tuple[tuple[str, str], ...]


SHAPES: dict[str, dict[str, object]] = {
    "gpt4all": {"prompt": PROMPT, "response": RESPONSE, "source": SOURCE},
    "alpaca": {"instruction": PROMPT, "input": EMPTY, "output": RESPONSE},
    "sharegpt": {
        "conversations": Turns("from", "value", (("system", "system"), ("user", "human"), ("assistant", "gpt")))
    },
    "openai": {
        "messages": Turns("role", "content", (("system", "system"), ("user", "user"), ("assistant", "assistant")))
    },
}


def check_format(fmt: str) -> dict[str, object]:
    shape = SHAPES.get(fmt)
    if shape is None:
        raise UserError(f"unknown export format {fmt!r}; choose one of {', '.join(FORMATS)}")
    return shape


def holds_conversations(fmt: str) -> bool:
    return any(isinstance(value, Turns) for value in check_format(fmt).values())


# --- the split -----------------------------------------------------------------------------


def _splitmix64(values: np.ndarray) -> np.ndarray:
    """SplitMix64's finalizer, vectorized: a fixed, well-mixed hash of 64-bit integers (unlike
    DuckDB's hash(), which may change between releases, this is part of curator's format)."""
    with np.errstate(over="ignore"):
        z = values.astype(np.uint64) + np.uint64(0x9E3779B97F4A7C15)
        z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
        return z ^ (z >> np.uint64(31))


def order_keys(ids: np.ndarray, seed: int) -> np.ndarray:
    """A seeded pseudo-random key per pair id. Files are written in key order: it depends on
    the ids and the seed only, never on insertion order, and mixes sources and topics."""
    seed_mix = _splitmix64(np.array([seed & 0xFFFFFFFFFFFFFFFF], dtype=np.uint64))[0]
    return _splitmix64(np.asarray(ids).astype(np.int64).view(np.uint64) ^ seed_mix)


def leak_groups(prompt_hash: np.ndarray, dup_group: np.ndarray, in_dup_group: np.ndarray) -> np.ndarray:
    """Group label per pair: pairs linked by the same normalized prompt or the same duplicate
    group, transitively (connected components), share a label."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    n = len(prompt_hash)
    if n == 0:
        return np.zeros(0, dtype=np.int64)
    _, by_prompt = np.unique(prompt_hash, return_inverse=True)
    rows, cols = [np.arange(n)], [n + by_prompt]
    members = np.flatnonzero(in_dup_group)
    if len(members):
        _, by_group = np.unique(dup_group[members], return_inverse=True)
        rows.append(members)
        cols.append(n + by_prompt.max() + 1 + by_group)
    rows, cols = np.concatenate(rows), np.concatenate(cols)
    size = int(cols.max()) + 1
    graph = coo_matrix((np.ones(len(rows), dtype=np.int8), (rows, cols)), shape=(size, size))
    _, labels = connected_components(graph, directed=False)
    return labels[:n].astype(np.int64)


def _stratum_targets(stratum_sizes: np.ndarray, val_fraction: float) -> np.ndarray:
    """Validation pairs wanted per stratum: val_fraction of each, rounded so that the total is
    round(val_fraction * all pairs) (largest remainders win the rounding; ties go to the
    lower stratum)."""
    exact = stratum_sizes * val_fraction
    targets = np.floor(exact)
    missing = int(round(stratum_sizes.sum() * val_fraction) - targets.sum())
    if missing > 0:
        remainders = exact - targets
        targets[np.lexsort((np.arange(len(exact)), -remainders))[:missing]] += 1
    return targets


def assign_split(groups: np.ndarray, strata: np.ndarray, keys: np.ndarray, val_fraction: float) -> np.ndarray:
    """True for the pairs that go to validation.

    A group's stratum and place in line are those of its member with the smallest key. In
    each stratum, groups are taken in key order into validation while the running pair count
    at the group's midpoint stays under the stratum's target: whole groups only, so a group
    is never on both sides, and a stratum ends within half a group of its share. Groups
    larger than their stratum's target go to the back of the line (a cluster that is mostly
    one repeated prompt still gets its other prompts into validation, not the repeated one).
    """
    if not 0 <= val_fraction < 1:
        raise UserError(f"the validation fraction must be in [0, 1); got {val_fraction}")
    n = len(groups)
    if n == 0 or val_fraction == 0:
        return np.zeros(n, dtype=bool)
    by_key = np.argsort(keys, kind="stable")
    _, group_index = np.unique(groups, return_inverse=True)
    sizes = np.bincount(group_index)
    first = np.full(len(sizes), n, dtype=np.int64)
    np.minimum.at(first, group_index[by_key], np.arange(n))  # rank of each group's first member
    group_strata = strata[by_key[first]]
    _, stratum_index = np.unique(group_strata, return_inverse=True)
    targets = _stratum_targets(np.bincount(stratum_index, weights=sizes), val_fraction)

    too_big = sizes > targets[stratum_index]
    line = np.lexsort((first, too_big, stratum_index))  # by stratum, fitting first, key
    ordered_sizes = sizes[line]
    ordered_strata = stratum_index[line]
    running = np.cumsum(ordered_sizes)
    starts = np.searchsorted(ordered_strata, ordered_strata, side="left")
    before_stratum = np.where(starts > 0, running[starts - 1], 0)
    midpoint = running - before_stratum - ordered_sizes / 2
    group_val = np.zeros(len(sizes), dtype=bool)
    group_val[line] = midpoint < targets[ordered_strata]
    return group_val[group_index]


# --- evaluation-set contamination -------------------------------------------------------------


def best_matches(vectors: np.ndarray, eval_vectors: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """(highest cosine, index of that eval prompt) per row of `vectors` (both L2-normalized)."""
    scores = np.empty(len(vectors), dtype=np.float32)
    which = np.empty(len(vectors), dtype=np.int64)
    for start in range(0, len(vectors), chunk):
        similarity = vectors[start : start + chunk] @ eval_vectors.T
        which[start : start + chunk] = similarity.argmax(axis=1)
        scores[start : start + chunk] = similarity[np.arange(len(similarity)), which[start : start + chunk]]
    return scores, which


# --- the manifest -----------------------------------------------------------------------------


def build_manifest(
    *,
    fmt: str,
    version: str | None,
    seed: int,
    val_fraction: float,
    selected: int,
    files: dict[str, dict],
    removed_by_eval_check: int,
    eval_check: dict,
    multi_turn: int,
    counts: dict,
    groups: int,
    stratified_by: str,
    operations: list[tuple],
    operations_up_to: int | None,
    signals: dict | None,
    duplicates: dict | None,
) -> dict:
    """What an export is: its settings, counts, the curation it reflects (operations log hash,
    the latest signals and duplicates runs' thresholds), the eval check, and each file's
    records, bytes and sha256. `files` maps train.jsonl (and val.jsonl) to their facts."""
    whole = holds_conversations(fmt)
    return {
        "tool": "curator",
        "tool_version": __version__,
        "format": fmt,
        "version": version,
        "seed": seed,
        "val_fraction": val_fraction,
        "pairs": {
            "selected": selected,
            "removed_by_eval_check": removed_by_eval_check,
            "exported": sum(f["records"] for f in files.values()),
            "train": files["train.jsonl"]["records"],
            "val": files["val.jsonl"]["records"] if "val.jsonl" in files else 0,
            "conversations_whole": multi_turn if whole else 0,
            "conversations_flattened": 0 if whole else multi_turn,
        },
        "counts": counts,
        "split": {
            "groups": groups,
            "grouped_by": "normalized prompt"
            + (" and duplicate group" if duplicates else " (no `curator duplicates` run)"),
            "stratified_by": stratified_by,
        },
        "operations_log": {
            "operations": len(operations),
            "up_to": operations_up_to,
            "sha256": operations_hash(operations),
        },
        "signals": signals,
        "duplicates": duplicates,
        "eval_check": eval_check,
        "files": files,
    }


def operations_hash(rows: list[tuple]) -> str:
    """sha256 over the operations log, one canonical JSON line per operation in id order.

    The rows carry what each operation did, not when (no created_at) nor what later
    operations did to it (no undone_by: the undo is its own row): a log replayed onto a
    fresh ingest of the same files hashes the same.
    """
    digest = hashlib.sha256()
    for row in rows:
        digest.update(json.dumps(list(row), ensure_ascii=False, default=str).encode() + b"\n")
    return digest.hexdigest()


def manifest_bytes(manifest: dict) -> bytes:
    """The manifest file's bytes: sorted keys, so equal manifests are equal files. It holds no
    creation time on purpose (the export's job row in `curator jobs` has it): the same version
    and seed give a byte-identical manifest."""
    return (json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True) + "\n").encode()
