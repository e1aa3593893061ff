"""Embedding vectors -> an Atlas-style 2-D map with fine and coarse clusters.

The steps, and why they are what they are:

- **PCA pre-reduction** to `pca_dims` (50) when the vectors are wider than that and more than
  `pca_min_points` (20,000) of them are fitted. UMAP's neighbour search costs grow with the
  width (100k x 384: ~235 s raw, ~71 s after PCA to 50). Below 20k it saves nothing (20k x 384:
  11.0 s raw, 11.6 s after PCA), so small maps keep the exact geometry.
- **Metric:** `metric` is the metric of the input vectors (cosine for sentence embeddings). After
  PCA, cosine becomes euclidean: on unit rows |a - b|^2 = 2 - 2 cos(a, b), so euclidean
  neighbours are cosine neighbours, and PCA (a projection) keeps euclidean distances, not angles.
  Rows are re-normalized before PCA so that this holds even for rows that were not unit length.
- **UMAP to 2-D, seeded and reproducible:** the same vectors and params give identical
  coordinates. umap-learn is reproducible only on one thread (its parallel SGD races), so the
  fit runs on one core; on two cores parallelism could save at most half, a price the map's
  stability is worth.
- **Sampling:** more than `fit_sample` (200,000) vectors: UMAP is fitted on a seeded sample and
  the rest are placed with `place` (UMAP transform, ~25 s per 100k points). Measured on 2 cores,
  1M x 384 (a 50-component mixture): 344 s for the projection (134 s UMAP on the sample, 205 s
  placing 800k) and 149 s for HDBSCAN, ~8.5 min in all, 7.7 GB peak; 100k: ~100 s + 4 s.
- **Near copies fitted once:** exact copies (a prompt asked 13 times) and near copies (cosine >=
  0.98: the P3 templates that wrap one passage, a canned question reworded) are fitted as one
  point, and the group's other members are spread around it on a sunflower spiral, so a group
  of 300 is drawn with the area of 300 points. Fitted apart, such groups bind to themselves
  and hardly to anything else: UMAP's spectral start failed ("Falling back to random
  initialisation") and it scattered the groups as a halo of dust around the map (8% of an 86k
  mixture). Fitting one point a group also makes the fit smaller (66k distinct of 87k pairs,
  41,687 groups, with the fast model).
  With the groups fitted once, the neighbour graph of the 86k mixture is one piece and the
  spectral start works.
- **Fine clusters:** HDBSCAN on the 2-D coordinates, i.e. on what the user sees, so a blob on
  the screen is a cluster; noise that is not dust joins its nearest cluster (`attach_noise`).
  Ids are numbered by size, 0 the largest; -1 is noise.
- **Coarse clusters:** Ward agglomeration of the fine clusters, each weighted by its size.

Placing later points never moves fitted ones: `place` only optimizes the new points against
the fitted embedding, and a `Projection` pickles (~100 MB for 100k fitted points, ~200 MB for a
200k sample: UMAP keeps its input, graph and search index), so a stored map can place points
later, with the same result as before the round trip.

**Numba compile cache.** umap and pynndescent compile ~50 s of numba code in every process,
most of it without numba's on-disk cache. `_umap()` turns that cache on for every compiled
function they define, so that later processes skip it (what is left, ~20 s on the first fit of
a process, is pynndescent's neighbour descent, which numba cannot cache; placing drops from
3.3 s to 0.4 s). The cache lives in `NUMBA_CACHE_DIR`, which numba reads once, when it is
first imported: callers should set it to `numba_cache_dir()` before anything imports numba (the
CLI does); this module sets it itself when numba is not loaded yet. umap and hdbscan are
imported inside the functions, so importing this module stays cheap.

Pure: no I/O except numba's cache, no printing; `progress(stage)` hears "pca", "neighbours",
"umap" and "placing 50,000/800,000"-style stages.
"""

from __future__ import annotations

import contextlib
import functools
import math
import os
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from curator import map_measures, parallel
from curator.cache import cache_dir
from curator.errors import UserError

if TYPE_CHECKING:
    from sklearn.decomposition import PCA
    from umap import UMAP

NOISE = -1
Progress = Callable[[str], None]

# UMAP needs two neighbours per point; its spectral initialisation needs 4 points (3 fail in
# scipy's eigensolver), so 3 points start from a random layout instead.
MIN_POINTS = 3
SPECTRAL_MIN_POINTS = 4
# Vectors per UMAP transform call while placing: bounds memory, reports progress, and stays
# above 10,000 so that every full chunk gets the same transform epochs (umap uses 100 epochs
# for batches of up to 10,000 and 30 above).
PLACE_CHUNK = 50_000
# Default min_cluster_size: one cluster can be as small as 1/1000 of the map, within 10 (tiny
# maps) and 1,000 (a million points). 1/400 (the earlier rule) made 217 the least size on an
# 86k mixture: one P3 template (~190 prompts) could not be a cluster of its own, and the
# clusters it could form mixed more families (majority family 84% instead of 86%).
MIN_CLUSTER_FRACTION = 1000
MIN_CLUSTER_SIZE_RANGE = (10, 1_000)
# Default min_samples: HDBSCAN's own default (= min_cluster_size) smooths density over hundreds
# of points on large maps and marks the fringe of every blob as noise. 5 keeps it local: on a
# real map (5,000 alpaca prompts) it left 29-32% noise where 10 left 33-36%, and it recovers
# synthetic mixtures exactly.
DEFAULT_MIN_SAMPLES = 5


@dataclass
class MapParams:
    seed: int = 42
    pca_dims: int = 50
    pca_min_points: int = 20_000  # PCA only when more points than this are fitted
    n_neighbors: int = 15
    min_dist: float = 0.1
    metric: str = "cosine"  # of the input vectors; euclidean after PCA (see above)
    min_cluster_size: int | None = None  # None: min_cluster_size_for(n)
    min_samples: int | None = None  # None: min(min_cluster_size, DEFAULT_MIN_SAMPLES)
    fit_sample: int | None = 200_000  # fit UMAP on at most this many points; None: all


@dataclass
class Projection:
    """A fitted projection: picklable, so a map can place later points without refitting."""

    params: MapParams
    pca: PCA | None  # fitted sklearn PCA, or None when the vectors went to UMAP as they were
    umap: UMAP  # fitted umap.UMAP


def numba_cache_dir() -> Path:
    """Where numba keeps compiled umap/pynndescent code between processes:
    $CURATOR_CACHE/numba, default ~/.cache/curator/numba."""
    return cache_dir() / "numba"


def fit_projection(
    vectors: np.ndarray, params: MapParams, progress: Progress | None = None, mapper: parallel.Mapper | None = None
) -> tuple[Projection, np.ndarray]:
    """Fit PCA (when useful) + UMAP on one vector of each group of near copies; return the
    fitted projection and (n, 2) float32 coordinates, the same for the same vectors and params.
    The other members of a group are spread around its point (`spread_copies`). `mapper`
    places the distinct vectors outside the fit sample (see `place`)."""
    vectors = _rows(vectors)
    if len(vectors) < MIN_POINTS:
        raise UserError(f"a map needs at least {MIN_POINTS} points, got {len(vectors)}")
    report = progress or _silent
    distinct, copy_of = distinct_rows(vectors)
    if len(distinct) < MIN_POINTS:  # (nearly) all one vector: nothing to lay out but copies
        distinct, copy_of = np.arange(len(vectors)), np.arange(len(vectors))
    sample = _fit_sample(len(distinct), params)
    candidates = np.arange(len(distinct)) if sample is None else sample  # positions among distinct
    report("pca")
    candidate_vectors = vectors[distinct[candidates]]
    pca = _fit_pca(candidate_vectors, params)
    rows = _reduce(pca, params, candidate_vectors)
    metric = _umap_metric(pca, params)
    report("neighbours")
    k = min(params.n_neighbors, len(rows) - 1)  # UMAP counts the point itself among them
    neighbours = nearest_neighbours(rows, k, metric, params.seed)
    leader = near_copy_leaders(neighbours[0], _cosines(candidate_vectors, neighbours[0]) >= NEAR_COPY_COSINE)
    leaders = np.unique(leader)
    if len(leaders) < len(rows) and len(leaders) > params.n_neighbors:
        rows = rows[leaders]
        neighbours = nearest_neighbours(rows, k, metric, params.seed)
    else:
        leader = leaders = np.arange(len(rows))
    report("umap")
    model = _fit_umap(rows, params, metric, neighbours)
    projection = Projection(params, pca, model)
    # Every distinct vector's group (its leader's position among the distinct vectors, or its
    # own when it was placed), and each group's point.
    group = np.arange(len(distinct))
    group[candidates] = candidates[leader]
    anchors = np.empty((len(distinct), 2), dtype=np.float32)
    anchors[candidates[leaders]] = model.embedding_  # a copy: no alias of the fitted embedding
    if sample is not None:
        rest = np.ones(len(distinct), dtype=bool)
        rest[sample] = False
        anchors[rest] = place(projection, vectors[distinct[rest]], progress, mapper)
    used, anchor_of_row = np.unique(group[copy_of], return_inverse=True)
    return projection, spread_copies(anchors[used], anchor_of_row.ravel())


# Vectors this close (cosine) to an earlier one are drawn as its copies: the P3 templates that
# wrap one passage, a canned answer reworded. Fitted apart, such a group binds tightly to
# itself and loosely to everything else, and UMAP pushes it out into a halo of dust around
# the map (on a real 86k mixture, the halo points' 5th nearest neighbour had cosine 0.98).
NEAR_COPY_COSINE = 0.98


def _cosines(vectors: np.ndarray, indices: np.ndarray) -> np.ndarray:
    """Cosine of each row's vector with each of its neighbours' (-1 for missing neighbours), on
    the vectors themselves: PCA shortens distances, and would make near copies of what are not."""
    unit = _unit_rows(vectors)
    cosines = np.empty(indices.shape, dtype=np.float32)
    for start in range(0, len(indices), 8192):
        block = indices[start : start + 8192]
        cosines[start : start + 8192] = np.einsum("nd,nkd->nk", unit[start : start + 8192], unit[block])
    cosines[indices < 0] = -1
    return cosines


def near_copy_leaders(indices: np.ndarray, close: np.ndarray) -> np.ndarray:
    """For every row, the row that stands for it: rows are taken in order, and each row not yet
    claimed leads itself and claims its unclaimed neighbours that are `close` to it (a mask
    beside `indices`), so every member is close to its leader, with no chains."""
    leader = np.full(len(indices), -1, dtype=np.int64)
    for row in range(len(indices)):
        if leader[row] >= 0:
            continue
        leader[row] = row
        members = indices[row][close[row]]
        members = members[(members >= 0) & (leader[members] < 0)]
        leader[members] = row
    return leader


def distinct_rows(vectors: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(indices of the first row of each distinct vector, ascending; for every row, the position
    of its vector among them). Exact: rows are grouped by two random projections and the
    groups are checked byte for byte, so vectors that merely share the keys stay apart."""
    vectors = np.ascontiguousarray(vectors)
    keys = vectors.astype(np.float64) @ np.random.default_rng(0).standard_normal((vectors.shape[1], 2))
    _, first, group = np.unique(keys, axis=0, return_index=True, return_inverse=True)
    group = group.ravel()
    representative = first[group]
    differs = np.flatnonzero((vectors != vectors[representative]).any(axis=1))
    representative[differs] = differs  # a collision of keys: the row stands for itself
    distinct, copy_of = np.unique(representative, return_inverse=True)
    return distinct, copy_of.ravel()


# Copies of a vector are spread on a sunflower spiral around its point, COPY_SPACING times the
# median distance between neighbouring points apart: 300 copies of one canned answer then
# cover about the area 300 distinct pairs would, instead of being drawn as one dot.
COPY_SPACING = 0.25
_GOLDEN_ANGLE = math.pi * (3 - math.sqrt(5))


def spread_copies(anchors: np.ndarray, anchor_of_row: np.ndarray) -> np.ndarray:
    """(n, 2) float32 coordinates: row i at its group's point `anchors[anchor_of_row[i]]`, the
    first row of each group on it and the later ones on a spiral around it."""
    coords = np.asarray(anchors, dtype=np.float32)[anchor_of_row]
    order = np.argsort(anchor_of_row, kind="stable")
    counts = np.bincount(anchor_of_row, minlength=len(anchors))
    starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    rank = np.empty(len(anchor_of_row), dtype=np.int64)
    rank[order] = np.arange(len(anchor_of_row)) - np.repeat(starts, counts)
    copies = rank > 0
    if copies.any():
        radius = COPY_SPACING * _median_neighbour_distance(anchors) * np.sqrt(rank[copies])
        angle = rank[copies] * _GOLDEN_ANGLE
        coords[copies] += np.column_stack([radius * np.cos(angle), radius * np.sin(angle)]).astype(np.float32)
    return coords


def _median_neighbour_distance(coords: np.ndarray) -> float:
    if len(coords) < 2:
        return 1.0
    distances = map_measures.neighbours_2d(coords, 1)[0][:, 0]
    positive = distances[distances > 0]
    return float(np.median(positive)) if len(positive) else 1.0


def nearest_neighbours(rows: np.ndarray, k: int, metric: str, seed: int) -> tuple[np.ndarray, np.ndarray, object]:
    """(k nearest neighbour indices, their distances, the search index) of every row, the row
    itself first, as UMAP reads them (pynndescent, seeded)."""
    umap = _umap()
    with _uncacheable_functions_quiet(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="n_jobs value")
        # pynndescent on a handful of points: fewer candidates than neighbours asked, said once.
        warnings.filterwarnings("ignore", message="Failed to correctly find n_neighbors")
        return umap.umap_.nearest_neighbors(
            rows, k, metric, {}, False, np.random.RandomState(seed), low_memory=True, n_jobs=1
        )


def place(
    projection: Projection, vectors: np.ndarray, progress: Progress | None = None, mapper: parallel.Mapper | None = None
) -> np.ndarray:
    """(m, 2) float32 coordinates for new vectors with the fitted projection (UMAP transform);
    fitted points do not move. Deterministic for the same vectors: chunks of PLACE_CHUNK are
    placed one at a time here, or by `mapper` (jobs.ray_pool's cluster places them on its
    workers), with the same coordinates."""
    vectors = _rows(vectors)
    report = progress or _silent
    chunks = [vectors[start : start + PLACE_CHUNK] for start in range(0, len(vectors), PLACE_CHUNK)]
    coords = np.empty((len(vectors), 2), dtype=np.float32)
    start = 0
    report(f"placing 0/{len(vectors):,}")
    for placed in (mapper or parallel.serial)(place_chunk, projection, chunks):
        coords[start : start + len(placed)] = placed
        start += len(placed)
        report(f"placing {start:,}/{len(vectors):,}")
    return coords


def place_chunk(projection: Projection, vectors: np.ndarray) -> np.ndarray:
    """One chunk of `place` (at most PLACE_CHUNK rows, so that it gets the transform's epochs)."""
    _umap()  # turns the compile cache on, also in a process that only unpickled a projection
    with _uncacheable_functions_quiet():
        return projection.umap.transform(_reduce(projection.pca, projection.params, vectors)).astype(np.float32)


def min_cluster_size_for(n: int) -> int:
    """The default min_cluster_size for a map of n points: n / 400, within 10 and 1,000."""
    low, high = MIN_CLUSTER_SIZE_RANGE
    return max(low, min(high, n // MIN_CLUSTER_FRACTION))


def cluster(coords: np.ndarray, params: MapParams) -> np.ndarray:
    """Fine cluster id per point (int32, -1 = noise): HDBSCAN on the 2-D map coordinates (what
    the user sees), then noise within reach of a cluster joined to it (`attach_noise`);
    deterministic. Ids are numbered by size, 0 the largest."""
    coords = np.asarray(coords, dtype=np.float64)
    size = params.min_cluster_size or min_cluster_size_for(len(coords))
    samples = params.min_samples or min(size, DEFAULT_MIN_SAMPLES)
    if len(coords) < size:
        return np.full(len(coords), NOISE, dtype=np.int32)
    import hdbscan

    # One thread: more core-distance jobs only add a process pool's start-up (seconds; the
    # minimum spanning tree dominates). Leaves of 100 points instead of 40: ~30% faster in 2-D
    # (300k points: 7.6 s instead of 10.7 s; bench/map.py times the map).
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=size, min_samples=samples, algorithm="boruvka_kdtree", leaf_size=100, core_dist_n_jobs=1
    )
    return _numbered_by_size(attach_noise(coords, clusterer.fit_predict(coords)))


# HDBSCAN calls the fringe of every blob and every sparse region noise (on a real 86k mixture,
# 22-25% of the points even without the dust; Lilac's users saw 36.8%). A noise point joins
# the cluster of its nearest clustered point when that point is within NOISE_REACH x the median
# distance from a point to its 10th nearest neighbour, the bound beyond which a point counts
# as dust (curator.map_measures.halo_share): what is not dust gets a cluster, the dust stays
# noise. Measured on that mixture: reach 2 left 22% noise, 5 left 12%, 10 left 4%.
NOISE_REACH = map_measures.HALO_FACTOR


def attach_noise(coords: np.ndarray, labels: np.ndarray, reach: float = NOISE_REACH) -> np.ndarray:
    """Labels with each noise point given its nearest clustered point's cluster when that point
    is within `reach` x the median 10th-neighbour distance of the map; the rest stay -1."""
    from scipy.spatial import cKDTree

    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.int32)
    noise = labels == NOISE
    if not noise.any() or noise.all():
        return labels.copy()
    k = min(map_measures.K, len(coords) - 1)
    scale = float(np.median(map_measures.neighbours_2d(coords, k)[0][:, -1]))
    distance, nearest = cKDTree(coords[~noise]).query(coords[noise], k=1)
    attached = labels.copy()
    near = distance <= reach * scale
    attached[np.flatnonzero(noise)[near]] = labels[~noise][nearest[near]]
    return attached


def coarse_clusters(coords: np.ndarray, labels: np.ndarray, n_coarse: int | None = None) -> dict[int, int]:
    """Parent (coarse) cluster id for each fine cluster id, and -1 for noise (-1).

    Ward agglomeration of the fine clusters, each starting as one cluster of its own size: the
    merge cost of two clusters is n_a n_b / (n_a + n_b) |c_a - c_b|^2, exactly Ward on the
    points when the fine clusters are the starting partition, so a small cluster joins the
    neighbour it costs least to absorb it into, not simply the closest centroid. n_coarse
    defaults to round(sqrt(fine clusters)) (100 fine -> 10 coarse). Parents are numbered in the
    order of their first fine cluster, so parent 0 holds fine cluster 0.
    """
    coords = np.asarray(coords, dtype=np.float64)
    labels = np.asarray(labels)
    fine = np.unique(labels[labels != NOISE])
    parents = {NOISE: NOISE}
    if len(fine) == 0:
        return parents
    if n_coarse is not None and n_coarse < 1:
        raise ValueError(f"n_coarse must be at least 1, got {n_coarse}")
    target = min(len(fine), n_coarse or max(1, round(math.sqrt(len(fine)))))
    centroids, sizes = _centroids(coords, labels, fine)
    groups = _ward_groups(centroids, sizes, target)
    parents.update(zip(fine.tolist(), groups.tolist()))
    return parents


def nearest_cluster(fitted_coords: np.ndarray, fitted_labels: np.ndarray, new_coords: np.ndarray) -> np.ndarray:
    """Cluster for newly placed points: the label of the nearest fitted point (int32), -1 when
    that point is noise."""
    from scipy.spatial import cKDTree

    new_coords = np.asarray(new_coords, dtype=np.float64).reshape(-1, 2)
    if len(new_coords) == 0:
        return np.empty(0, dtype=np.int32)
    _, nearest = cKDTree(np.asarray(fitted_coords, dtype=np.float64)).query(new_coords, k=1)
    return np.asarray(fitted_labels, dtype=np.int32)[nearest]


# --- projection steps -------------------------------------------------------------------------


def _rows(vectors: np.ndarray) -> np.ndarray:
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    if vectors.ndim != 2:
        raise ValueError(f"vectors must be a 2-D array (n, dim), got shape {vectors.shape}")
    return vectors


def _silent(stage: str) -> None:
    pass


def _fit_sample(n: int, params: MapParams) -> np.ndarray | None:
    """Sorted indices of the points UMAP is fitted on, or None for all of them."""
    if params.fit_sample is None or n <= params.fit_sample:
        return None
    if params.fit_sample < MIN_POINTS:
        raise UserError(f"fit_sample must be at least {MIN_POINTS}, got {params.fit_sample}")
    return np.sort(np.random.default_rng(params.seed).choice(n, size=params.fit_sample, replace=False))


def _fit_pca(vectors: np.ndarray, params: MapParams) -> PCA | None:
    if vectors.shape[1] <= params.pca_dims or len(vectors) <= params.pca_min_points:
        return None
    from sklearn.decomposition import PCA

    pca = PCA(n_components=params.pca_dims, svd_solver="randomized", random_state=params.seed)
    pca.fit(_unit_rows(vectors) if params.metric == "cosine" else vectors)
    # The fit leaves components_ as a Fortran-ordered view, which a pickle round trip turns
    # C-ordered, and BLAS rounds the two layouts differently: a reloaded projection would
    # place points elsewhere (by up to 1.7 map units, measured). One layout from the start.
    pca.components_ = np.ascontiguousarray(pca.components_)
    return pca


def _reduce(pca: PCA | None, params: MapParams, vectors: np.ndarray) -> np.ndarray:
    """What UMAP sees: the vectors, or their PCA projection (the same path for fit and place)."""
    if pca is None:
        return vectors
    if params.metric == "cosine":
        vectors = _unit_rows(vectors)
    return np.ascontiguousarray(pca.transform(vectors), dtype=np.float32)


def _unit_rows(vectors: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(vectors, axis=1, keepdims=True)
    return vectors / np.where(norms > 0, norms, 1)


def _umap_metric(pca: PCA | None, params: MapParams) -> str:
    return "euclidean" if pca is not None and params.metric == "cosine" else params.metric


def _fit_umap(rows: np.ndarray, params: MapParams, metric: str, neighbours) -> UMAP:
    umap = _umap()
    model = umap.UMAP(
        n_components=2,
        n_neighbors=min(params.n_neighbors, len(rows) - 1),
        min_dist=params.min_dist,
        metric=metric,
        precomputed_knn=neighbours,
        init="spectral" if len(rows) >= SPECTRAL_MIN_POINTS else "random",
        # A seed makes umap single-threaded and reproducible; n_jobs=1 says so
        # instead of letting umap warn that it overrode n_jobs.
        random_state=params.seed,
        transform_seed=params.seed,
        n_jobs=1,
    )
    with _uncacheable_functions_quiet():
        model.fit(rows)
    return model


@functools.cache
def _umap():
    """umap, imported on first use (the import alone costs ~3 s), with numba's on-disk cache
    turned on for every function umap and pynndescent compile."""
    if "numba" not in sys.modules:
        os.environ.setdefault("NUMBA_CACHE_DIR", str(numba_cache_dir()))
    import umap
    from numba.core.dispatcher import Dispatcher

    for name, module in list(sys.modules.items()):
        if module is not None and name.split(".")[0] in ("umap", "pynndescent"):
            for value in vars(module).values():
                if isinstance(value, Dispatcher):
                    value.enable_caching()
    return umap


@contextlib.contextmanager
def _uncacheable_functions_quiet() -> Iterator[None]:
    """Numba warns, once per process, about the functions it cannot cache (pynndescent's
    neighbour descent takes a function argument); they compile as before, so say nothing."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="Cannot cache compiled function")
        yield


# --- clusters ---------------------------------------------------------------------------------


def _numbered_by_size(labels: np.ndarray) -> np.ndarray:
    """Cluster ids renumbered 0, 1, ... from the largest cluster down (ties: the lower old id
    first); noise stays -1."""
    labels = np.asarray(labels)
    clustered = labels != NOISE
    ids, counts = np.unique(labels[clustered], return_counts=True)
    renumbered = np.full(len(labels), NOISE, dtype=np.int32)
    if len(ids):
        rank = np.empty(len(ids), dtype=np.int32)
        rank[np.argsort(-counts, kind="stable")] = np.arange(len(ids), dtype=np.int32)
        renumbered[clustered] = rank[np.searchsorted(ids, labels[clustered])]
    return renumbered


def _centroids(coords: np.ndarray, labels: np.ndarray, fine: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centroid and size of each fine cluster, in the order of `fine`."""
    clustered = labels != NOISE
    index = np.searchsorted(fine, labels[clustered])
    sizes = np.bincount(index, minlength=len(fine)).astype(np.float64)
    sums = np.stack(
        [np.bincount(index, weights=coords[clustered, axis], minlength=len(fine)) for axis in range(coords.shape[1])],
        axis=1,
    )
    return sums / sizes[:, None], sizes


def _ward_groups(centroids: np.ndarray, sizes: np.ndarray, n_groups: int) -> np.ndarray:
    """Group id per cluster after Ward has merged them down to n_groups; groups are numbered in
    the order of their first cluster."""
    parent = list(range(len(sizes)))

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    # Ward's merge costs never decrease up the tree, so the cheapest merges are exactly the
    # first ones greedy Ward would make.
    for _, a, b in sorted(_ward_merges(centroids, sizes))[: len(sizes) - n_groups]:
        parent[root(b)] = root(a)
    numbering: dict[int, int] = {}
    return np.array([numbering.setdefault(root(i), len(numbering)) for i in range(len(sizes))], dtype=np.int32)


def _ward_merges(centroids: np.ndarray, sizes: np.ndarray) -> list[tuple[float, int, int]]:
    """Every merge (cost, a, b) of the full Ward hierarchy of weighted clusters, by the
    nearest-neighbour chain: O(k^2) time and O(k) memory, where a k x k cost matrix would not
    fit for tens of thousands of fine clusters. A merged cluster lives on in slot a."""
    centroids = np.array(centroids, dtype=np.float64)
    sizes = np.array(sizes, dtype=np.float64)
    active = np.ones(len(sizes), dtype=bool)
    chain: list[int] = []
    merges = []
    for _ in range(len(sizes) - 1):
        if not chain:
            chain.append(int(np.flatnonzero(active)[0]))
        while True:
            a = chain[-1]
            cost = _ward_costs(centroids, sizes, a)
            cost[~active] = np.inf
            cost[a] = np.inf
            b = int(np.argmin(cost))
            # Reciprocal nearest neighbours merge; preferring the previous link on ties is what
            # makes the chain end.
            if len(chain) > 1 and cost[chain[-2]] <= cost[b]:
                b = chain[-2]
                break
            chain.append(b)
        del chain[-2:]
        merges.append((float(cost[b]), a, b))
        total = sizes[a] + sizes[b]
        centroids[a] = (sizes[a] * centroids[a] + sizes[b] * centroids[b]) / total
        sizes[a] = total
        active[b] = False
    return merges


def _ward_costs(centroids: np.ndarray, sizes: np.ndarray, a: int) -> np.ndarray:
    """Ward's cost of merging cluster a with each cluster: the growth of the within-cluster sum
    of squares."""
    squared_distance = ((centroids - centroids[a]) ** 2).sum(axis=1)
    return sizes * sizes[a] / (sizes + sizes[a]) * squared_distance
