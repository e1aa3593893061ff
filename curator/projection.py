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
- **Fine clusters:** HDBSCAN on the 2-D coordinates, i.e. on what the user sees, so a blob on
  the screen is a cluster. Ids are numbered by size, 0 the largest; -1 is noise.
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

Pure: no I/O except numba's cache, no printing; `progress(stage)` hears "pca", "umap" and
"placing 50,000/800,000"-style stages.
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

from curator import parallel
from curator.cache import cache_dir

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
# Default min_cluster_size: one cluster can be as small as 1/400 of the map, so a map has at
# most ~400 fine clusters, within 10 (tiny maps) and 1,000 (a million points: up to ~1,000).
MIN_CLUSTER_FRACTION = 400
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
    """Fit PCA (when useful) + UMAP; return the fitted projection and (n, 2) float32 coordinates,
    the same for the same vectors and params. `mapper` places the points outside the fit
    sample (see `place`)."""
    vectors = _rows(vectors)
    if len(vectors) < MIN_POINTS:
        raise ValueError(f"a map needs at least {MIN_POINTS} points, got {len(vectors)}")
    report = progress or _silent
    sample = _fit_sample(len(vectors), params)
    fit_rows = vectors if sample is None else vectors[sample]
    report("pca")
    pca = _fit_pca(fit_rows, params)
    report("umap")
    model = _fit_umap(_reduce(pca, params, fit_rows), params, _umap_metric(pca, params))
    projection = Projection(params, pca, model)
    # A copy: the caller's coordinates must not alias the fitted embedding inside the projection.
    fitted_coords = np.array(model.embedding_, dtype=np.float32)
    if sample is None:
        return projection, fitted_coords
    coords = np.empty((len(vectors), 2), dtype=np.float32)
    coords[sample] = fitted_coords
    rest = np.ones(len(vectors), dtype=bool)
    rest[sample] = False
    coords[rest] = place(projection, vectors[rest], progress, mapper)
    return projection, coords


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
    the user sees), deterministic. Ids are numbered by size, 0 the largest."""
    coords = np.asarray(coords, dtype=np.float64)
    size = params.min_cluster_size or min_cluster_size_for(len(coords))
    samples = params.min_samples or min(size, DEFAULT_MIN_SAMPLES)
    if len(coords) < size:
        return np.full(len(coords), NOISE, dtype=np.int32)
    import hdbscan

    # One thread: more core-distance jobs only add a process pool's start-up (seconds; the
    # minimum spanning tree dominates). Leaves of 100 points instead of 40: ~30% faster in 2-D
    # (300k points: 7.6 s instead of 10.7 s).
    clusterer = hdbscan.HDBSCAN(
        min_cluster_size=size, min_samples=samples, algorithm="boruvka_kdtree", leaf_size=100, core_dist_n_jobs=1
    )
    return _numbered_by_size(clusterer.fit_predict(coords))


def assign_noise(coords: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Labels with every noise point given its nearest non-noise point's cluster. An option for
    the caller: by default noise stays visible as -1. Unchanged when there is no cluster."""
    coords = np.asarray(coords)
    labels = np.asarray(labels, dtype=np.int32)
    noise = labels == NOISE
    assigned = labels.copy()
    if noise.any() and not noise.all():
        assigned[noise] = nearest_cluster(coords[~noise], labels[~noise], coords[noise])
    return assigned


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
        raise ValueError(f"fit_sample must be at least {MIN_POINTS}, got {params.fit_sample}")
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


def _fit_umap(rows: np.ndarray, params: MapParams, metric: str) -> UMAP:
    umap = _umap()
    model = umap.UMAP(
        n_components=2,
        n_neighbors=min(params.n_neighbors, len(rows) - 1),
        min_dist=params.min_dist,
        metric=metric,
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
