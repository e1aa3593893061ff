"""Duplicate sets, the member each one keeps, and conflicting answers: pure functions over arrays.

Vocabulary. Two pairs are **near-identical on a side** (prompt or response) when their
normalized texts are equal, or, failing that, when their vectors of that side have a cosine
>= `threshold`, or, when that side has no vectors, when their word sets have a Jaccard
similarity >= `text_threshold`. Two pairs are **duplicates** when the map embeds whole pairs
and their vectors' cosine is >= `threshold`, or else when they are near-identical on both
sides (on a prompt map two equal questions with different answers are not duplicates).
Duplicates are linked into sets (connected components): `dup_group`. A set is `exact` when
all its members have the same normalized prompt and response, `semantic` otherwise.
Two pairs **conflict** when their prompts are near-identical and their answers diverge:
different normalized responses whose cosine is < `diverge_below` (or, without response
vectors, whose word-set Jaccard is < `text_diverge_below`).

Which member a set keeps (`dup_keep`) is decided by a quality score, not arbitrarily:
fewest problem flags first, each weighted by its penalty in curator.signals.FLAGS (refusal 8,
malformed 4, truncated 2, short 1, over_length 1: a refusal is worse than any combination of
the milder problems); then the
longest response in words (among near-copies of one answer, the longer one is the complete
one: the planted and real truncations are shorter); then the smallest pair id, so that the
choice is the same on every run.

Finding near-identical vectors never compares all pairs at once (`near_pairs`): sets of up
to EXACT_MAX vectors are compared exactly, block by block; larger sets are first split into
overlapping cells by spherical k-means (each vector goes to its PROBES nearest centroids, so
two near-identical vectors almost always share a cell; two-level k-means past COARSE cells)
and each cell is searched the same way, batches of cells in parallel (on threads, or on a
Ray cluster: `mapper`). Measured on 100k real prompts (fast vectors, threshold 0.95): 99.6% of
the pairs that the exact all-pairs search puts in a set are in one here, at ~1/25 of its CPU
time and 3.2x as fast as pynndescent (bench/dedup.py). Each vector keeps at most `neighbours`
near-identical partners per cell it is searched in:
memory stays O(n * k) even when thousands of pairs are alike, and such a set stays connected
through them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp
from scipy.sparse.csgraph import connected_components
from threadpoolctl import threadpool_limits

from curator import parallel
from curator.errors import UserError
from curator.signals import FLAGS

EXACT_MAX = 8192  # vectors compared all against all; larger sets are partitioned first
CELL_SIZE = 250  # vectors per k-means cell when partitioning
PROBES = 3  # cells each vector joins: two near-identical vectors share one
MAX_DEPTH = 3  # partitioning levels before a set is searched exactly whatever its size
COARSE = 64  # above this many cells, centroids are reached through coarse cells
NEAR_COARSE = 10  # a row is compared with this many coarse cells' worth of fine centroids
SEARCH_BATCH = 16_384  # rows of cells searched as one piece (by a thread or a Ray worker)
_BLOCK_ELEMENTS = 1 << 22  # similarities held at once (16 MiB of float32)
_KMEANS_ITERATIONS = 8
_KMEANS_SAMPLE_PER_CELL = 40


@dataclass(frozen=True)
class DuplicateParams:
    threshold: float = 0.95  # cosine: near-identical vectors
    text_threshold: float = 0.8  # word-set Jaccard: near-identical texts (a side without vectors)
    diverge_below: float = 0.5  # cosine under which two answers diverge (a conflict)
    text_diverge_below: float = 0.3  # word-set Jaccard under which two answers diverge
    neighbours: int = 16  # near-identical partners kept per pair (k of the k-NN search)

    def __post_init__(self) -> None:
        for name in ("threshold", "text_threshold", "diverge_below", "text_diverge_below"):
            if not 0 < getattr(self, name) <= 1:
                raise UserError(f"{name} must be in (0, 1], not {getattr(self, name)}")
        if self.neighbours < 1:
            raise UserError(f"neighbours must be at least 1, not {self.neighbours}")


Progress = Callable[[int, int, str], None]


# --- k-NN search ------------------------------------------------------------------------


def near_pairs(
    vectors: np.ndarray,
    threshold: float,
    k: int,
    *,
    seed: int = 0,
    progress: Progress | None = None,
    mapper: parallel.Mapper | None = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) with i < j for rows of unit `vectors` whose cosine is >= threshold, each
    row keeping its k most similar partners in each cell it is searched in (it can appear in
    more edges as someone else's partner). `mapper` runs the cell searches (default: threads
    here; jobs.ray_pool's cluster distributes them): the cells and so the result are the same."""
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if len(vectors) < 2:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    batches = _batches(_cells(vectors, np.random.default_rng(seed)))
    total, searched = sum(len(m) for batch in batches for m in batch), 0
    found = []
    # Batches are searched in parallel, each with one BLAS thread: measured on 100k vectors on
    # a busy 2-core machine, BLAS's own two threads on these small products took 42 s (18 CPU-s)
    # against 22 s (10 CPU-s) for one thread, as its threads wait on each other (bench/dedup.py).
    with threadpool_limits(1, user_api="blas"):
        for batch, edges in zip(batches, (mapper or parallel.threaded)(search_cells, (vectors, threshold, k), batches)):
            found.append(edges)
            searched += sum(map(len, batch))
            if progress:
                progress(searched, total, f"{searched:,}/{total:,} vectors searched")
    i, j, s = (np.concatenate([f[column] for f in found]) for column in range(3))
    low, high = np.minimum(i, j), np.maximum(i, j)
    _, first = np.unique(low.astype(np.int64) * len(vectors) + high, return_index=True)
    return low[first], high[first], s[first]


def search_cells(
    shared: tuple[np.ndarray, float, int], cells: list[np.ndarray]
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(i, j, cosine) of every cell of a batch searched exactly, in row indexes of `vectors`.
    shared: (vectors, threshold, k)."""
    vectors, threshold, k = shared
    found = []
    for members in cells:
        i, j, s = _search_exactly(vectors[members], threshold, k)
        found.append((members[i], members[j], s))
    return tuple(np.concatenate([f[column] for f in found]) for column in range(3))


def _batches(cells: list[np.ndarray]) -> list[list[np.ndarray]]:
    """Cells in order, grouped into batches of about SEARCH_BATCH rows (a cell is never split):
    pieces big enough that handing one to a thread or a worker costs little beside its search."""
    batches, rows = [[]], 0
    for cell in cells:
        if rows >= SEARCH_BATCH:
            batches.append([])
            rows = 0
        batches[-1].append(cell)
        rows += len(cell)
    return batches


def _cells(vectors: np.ndarray, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indexes of the sets to search exactly: all rows, or overlapping k-means cells of
    them, split again while larger than EXACT_MAX (up to MAX_DEPTH levels)."""
    leaves, pending = [], [(np.arange(len(vectors)), 0)]
    while pending:
        members, depth = pending.pop()
        if len(members) > EXACT_MAX and depth < MAX_DEPTH:
            cells = _partition(vectors[members], -(-len(members) // CELL_SIZE), rng)
            if max(map(len, cells)) < len(members):  # else all alike: splitting cannot help
                pending.extend((members[cell], depth + 1) for cell in cells)
                continue
        leaves.append(members)
    return leaves


def _search_exactly(vectors: np.ndarray, threshold: float, k: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """All-against-all in row blocks: each row's (up to) k best partners at or above threshold."""
    n = len(vectors)
    block = max(1, min(n, _BLOCK_ELEMENTS // max(n, 1)))
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    for start in range(0, n, block):
        sims = vectors[start : start + block] @ vectors.T
        rows = np.arange(start, min(start + block, n))
        sims[np.arange(len(rows)), rows] = -np.inf  # not its own partner
        hits = sims >= threshold
        few = hits.sum(axis=1) <= k
        r, c = np.nonzero(hits & few[:, None])
        found.append((rows[r], c, sims[r, c]))
        many = np.flatnonzero(~few)
        if len(many):  # more than k partners: the k most similar (all above threshold)
            best = np.argpartition(-sims[many], k, axis=1)[:, :k].ravel()
            r = np.repeat(many, k)
            found.append((rows[r], best, sims[r, best]))
    return tuple(
        np.concatenate([part[column] for part in found]).astype(dtype)
        for column, dtype in enumerate((np.int64, np.int64, np.float32))
    )


def _partition(vectors: np.ndarray, n_cells: int, rng: np.random.Generator) -> list[np.ndarray]:
    """Row indexes of each cell: every row joins its PROBES nearest spherical k-means centroids.

    Above COARSE cells, comparing every row with every centroid would cost O(n^2 / CELL_SIZE);
    the centroids are then found and searched through sqrt(n_cells) coarse cells (two-level
    k-means): each coarse cell gets fine centroids in proportion to its rows, and a row is
    compared only with its own coarse cell's fine centroids and the fine centroids nearest to
    that coarse centroid, NEAR_COARSE cells' worth (so that near-identical rows on either side
    of a coarse border still meet)."""
    if n_cells <= COARSE:
        centroids = _spherical_kmeans(vectors, n_cells, rng)
        nearest = _nearest(vectors, centroids, PROBES)
    else:
        coarse = _spherical_kmeans(vectors, int(np.sqrt(n_cells)), rng)
        home = _nearest(vectors, coarse, 1)[:, 0]
        members = [np.flatnonzero(home == c) for c in range(len(coarse))]
        fine = [
            _spherical_kmeans(vectors[rows], max(1, round(n_cells * len(rows) / len(vectors))), rng)
            for rows in members
            if len(rows)
        ]
        parent = np.repeat([c for c, rows in enumerate(members) if len(rows)], [len(f) for f in fine])
        fine = np.concatenate(fine)
        near = _nearest(coarse, fine, min(len(fine), NEAR_COARSE * -(-len(fine) // len(coarse))))
        nearest = np.empty((len(vectors), PROBES), dtype=np.int64)
        for c, rows in enumerate(members):
            if len(rows):
                allowed = np.union1d(near[c], np.flatnonzero(parent == c))
                nearest[rows] = allowed[_nearest(vectors[rows], fine[allowed], PROBES)]
    # (cell, row) once each: a row with fewer candidate centroids than PROBES repeats its best.
    memberships = np.unique(nearest * len(vectors) + np.arange(len(vectors))[:, None])
    cell_of, row_of = np.divmod(memberships, len(vectors))
    return [cell for cell in np.split(row_of, np.flatnonzero(np.diff(cell_of)) + 1) if len(cell) > 1]


def _nearest(vectors: np.ndarray, centroids: np.ndarray, count: int) -> np.ndarray:
    """(rows, count) indexes of each row's `count` most similar centroids (the best repeated
    when there are fewer centroids)."""
    nearest = np.empty((len(vectors), count), dtype=np.int64)
    chunk = max(1, _BLOCK_ELEMENTS // len(centroids))
    for start in range(0, len(vectors), chunk):
        sims = vectors[start : start + chunk] @ centroids.T
        if count < len(centroids):
            nearest[start : start + chunk] = np.argpartition(-sims, count - 1, axis=1)[:, :count]
        else:
            ranked = np.argsort(-sims, axis=1)
            nearest[start : start + chunk] = ranked[:, np.minimum(np.arange(count), len(centroids) - 1)]
    return nearest


def _spherical_kmeans(vectors: np.ndarray, n_cells: int, rng: np.random.Generator) -> np.ndarray:
    """Unit centroids fitted on a sample (cosine k-means); a cell that empties keeps its centroid."""
    sample = vectors[rng.choice(len(vectors), min(len(vectors), n_cells * _KMEANS_SAMPLE_PER_CELL), replace=False)]
    centroids = sample[rng.choice(len(sample), min(n_cells, len(sample)), replace=False)].copy()
    for _ in range(_KMEANS_ITERATIONS):
        nearest = np.argmax(sample @ centroids.T, axis=1)
        assignment = sp.csr_matrix(
            (np.ones(len(sample), dtype=np.float32), (nearest, np.arange(len(sample)))),
            shape=(len(centroids), len(sample)),
        )
        sums = np.asarray(assignment @ sample)
        norms = np.linalg.norm(sums, axis=1, keepdims=True)
        centroids = np.where(norms > 0, sums / np.maximum(norms, 1e-12), centroids)
    return centroids


# --- groups -------------------------------------------------------------------------------


def same_key_edges(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(i, j): rows sharing a key, each linked to the first row (in row order) with that key."""
    order = np.lexsort((np.arange(len(keys)), keys))
    sorted_keys = keys[order]
    starts = np.flatnonzero(np.r_[True, sorted_keys[1:] != sorted_keys[:-1]])
    first = np.repeat(order[starts], np.diff(np.r_[starts, len(keys)]))
    linked = first != order
    return first[linked].astype(np.int64), order[linked].astype(np.int64)


def components(n: int, i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Connected component of each of n rows over the edges (i, j); -1 for rows with no edge."""
    graph = sp.coo_matrix((np.ones(len(i), dtype=np.int8), (i, j)), shape=(n, n))
    _, labels = connected_components(graph, directed=False)
    sizes = np.bincount(labels)
    return np.where(sizes[labels] > 1, labels, -1)


def number_groups(labels: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """Groups renumbered 1, 2, ... largest first (ties: smallest member id first); -1 stays -1."""
    grouped = np.flatnonzero(labels >= 0)
    if not len(grouped):
        return labels.copy()
    uniq, inverse, sizes = np.unique(labels[grouped], return_inverse=True, return_counts=True)
    smallest = np.full(len(uniq), np.iinfo(np.int64).max)
    np.minimum.at(smallest, inverse, ids[grouped])
    rank = np.empty(len(uniq), dtype=np.int64)
    rank[np.lexsort((smallest, -sizes))] = np.arange(1, len(uniq) + 1)
    numbered = np.full(len(labels), -1, dtype=np.int64)
    numbered[grouped] = rank[inverse]
    return numbered


def group_kinds(groups: np.ndarray, pair_hashes: np.ndarray) -> np.ndarray:
    """Per row: 'exact' when every member of its group has the same pair hash, else 'semantic'."""
    kinds = np.full(len(groups), None, dtype=object)
    grouped = np.flatnonzero(groups >= 0)
    g, h = groups[grouped], pair_hashes[grouped]
    order = np.lexsort((h, g))
    g, h = g[order], h[order]
    new_hash = np.r_[True, (g[1:] != g[:-1]) | (h[1:] != h[:-1])]
    distinct = np.bincount(g, weights=new_hash) if len(g) else np.zeros(0)
    kinds[grouped] = np.where(distinct[groups[grouped]] == 1, "exact", "semantic")
    return kinds


# --- keep choice --------------------------------------------------------------------------


def penalties() -> dict[str, int]:
    """Each flag's weight in the keep choice (curator.signals.FLAGS; module docstring)."""
    return {flag.name: flag.penalty for flag in FLAGS.values() if flag.penalty}


def quality_penalty(signals: dict[str, np.ndarray], n: int) -> np.ndarray:
    """Weighted count of problem flags per row of n (penalties(); a flag not given counts as
    absent)."""
    penalty = np.zeros(n, dtype=np.int64)
    for name, weight in penalties().items():
        if name in signals:
            penalty += weight * np.asarray(signals[name], dtype=bool)
    return penalty


def keep_members(groups: np.ndarray, penalty: np.ndarray, words: np.ndarray, ids: np.ndarray) -> np.ndarray:
    """True for the one member of each group to keep: lowest penalty, then most words, then
    smallest id. Rows outside any group (-1) are False."""
    order = np.lexsort((ids, -words, penalty, groups))
    sorted_groups = groups[order]
    first = np.r_[True, sorted_groups[1:] != sorted_groups[:-1]]
    keep = np.zeros(len(groups), dtype=bool)
    keep[order[first]] = True
    return keep & (groups >= 0)


# --- text similarity ----------------------------------------------------------------------

_WORD = re.compile(r"\w+")


def word_set(text: str) -> frozenset[str]:
    return frozenset(_WORD.findall(text.lower()))


def jaccard(a: frozenset[str], b: frozenset[str]) -> float:
    if not a and not b:
        return 1.0
    return len(a & b) / len(a | b)


def text_similarity(texts: Mapping[int, str] | Sequence[str], i: np.ndarray, j: np.ndarray) -> np.ndarray:
    """Word-set Jaccard similarity of texts[i] and texts[j], edge by edge (texts: row -> text)."""
    sets: dict[int, frozenset[str]] = {}

    def words_of(row: int) -> frozenset[str]:
        if row not in sets:
            sets[row] = word_set(texts[row])
        return sets[row]

    return np.array([jaccard(words_of(a), words_of(b)) for a, b in zip(i.tolist(), j.tolist())], dtype=np.float32)


# --- classifying candidate edges ------------------------------------------------------------


@dataclass
class Side:
    """What is known of one side (prompt or response) of candidate edges."""

    same: np.ndarray  # equal normalized text
    similarity: np.ndarray  # cosine (by_vector) or word-set Jaccard; NaN where not computed (same)
    by_vector: np.ndarray


def near_identical(side: Side, params: DuplicateParams) -> np.ndarray:
    limit = np.where(side.by_vector, params.threshold, params.text_threshold)
    return side.same | (side.similarity >= limit)


def diverging(side: Side, params: DuplicateParams) -> np.ndarray:
    limit = np.where(side.by_vector, params.diverge_below, params.text_diverge_below)
    return ~side.same & (side.similarity < limit)


def classify(
    pair_similarity: np.ndarray | None, prompt: Side, response: Side, params: DuplicateParams
) -> tuple[np.ndarray, np.ndarray]:
    """(duplicate, conflict) per candidate edge. `pair_similarity`: the cosine of whole-pair
    vectors (a pair map; NaN where a row has none), else None."""
    same_prompt = near_identical(prompt, params)
    both_sides = same_prompt & near_identical(response, params)
    if pair_similarity is None:
        duplicate = both_sides
    else:
        duplicate = np.where(np.isnan(pair_similarity), both_sides, pair_similarity >= params.threshold)
        duplicate |= prompt.same & response.same
    return duplicate, same_prompt & diverging(response, params)
