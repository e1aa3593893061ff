"""curator.projection on realistic synthetic structure: a seeded Gaussian mixture on the
384-d unit sphere, sentence-embedding-like: components are nearly orthogonal, and within one
component points vary along a few directions (sub-topics) plus isotropic noise, so that
neighbours within a component are meaningful, as they are for real texts."""

from __future__ import annotations

import pickle
import subprocess
import sys

import numpy as np
import pytest
from scipy.cluster.hierarchy import fcluster, linkage
from sklearn.metrics import adjusted_rand_score

from curator import projection
from curator.projection import MapParams

DIM = 384
SIZES = (420, 330, 260, 200, 170, 120)  # unequal components, 1,500 points
WITHIN = 0.4  # spread along each component's own 2 directions
NOISE = 0.02  # per-dimension isotropic noise


def unit_rows(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


_rng = np.random.default_rng(0)
CENTRES = unit_rows(_rng.standard_normal((len(SIZES), DIM)))
DIRECTIONS = np.stack([unit_rows(_rng.standard_normal((2, DIM))) for _ in SIZES])  # (k, 2, DIM)


def draw(component: np.ndarray, seed: int) -> np.ndarray:
    """Unit vectors from the given mixture components."""
    rng = np.random.default_rng(seed)
    latent = rng.standard_normal((len(component), 1, 2))
    within = (latent @ DIRECTIONS[component])[:, 0]
    return unit_rows(CENTRES[component] + WITHIN * within + NOISE * rng.standard_normal((len(component), DIM)))


@pytest.fixture(scope="module")
def mixture() -> tuple[np.ndarray, np.ndarray]:
    component = np.repeat(np.arange(len(SIZES)), SIZES)
    component = component[np.random.default_rng(1).permutation(len(component))]
    return draw(component, seed=2), component


# Below pca_min_points UMAP sees the raw vectors (cosine); pca_min_points=0 forces the PCA path
# (euclidean on 50 dims) that large maps take.
RAW = MapParams(seed=7)
PCA = MapParams(seed=7, pca_min_points=0)


@pytest.fixture(scope="module")
def fitted(mixture):
    vectors, _ = mixture
    fitted_projection, coords = projection.fit_projection(vectors, RAW)
    return fitted_projection, coords, projection.cluster(coords, RAW)


@pytest.fixture(scope="module")
def fitted_pca(mixture):
    vectors, _ = mixture
    fitted_projection, coords = projection.fit_projection(vectors, PCA)
    return fitted_projection, coords, projection.cluster(coords, PCA)


def majority_cluster(labels: np.ndarray, component: np.ndarray) -> dict[int, int]:
    return {int(c): int(np.bincount(labels[(component == c) & (labels >= 0)]).argmax()) for c in np.unique(component)}


# --- fit, reproducibility, clusters -------------------------------------------------------------


def test_shapes_and_dtypes(mixture, fitted):
    vectors, _ = mixture
    _, coords, labels = fitted
    assert coords.shape == (len(vectors), 2) and coords.dtype == np.float32
    assert np.isfinite(coords).all()
    assert labels.shape == (len(vectors),) and labels.dtype == np.int32


def test_pca_only_above_the_threshold_and_euclidean_after_it(fitted, fitted_pca):
    assert fitted[0].pca is None and fitted[0].umap.metric == "cosine"
    assert fitted_pca[0].pca.n_components == 50 and fitted_pca[0].umap.metric == "euclidean"


@pytest.mark.slow
def test_same_seed_gives_identical_coordinates_and_labels(mixture, fitted_pca):
    vectors, _ = mixture
    _, coords, labels = fitted_pca
    _, again = projection.fit_projection(vectors.copy(), PCA)
    assert np.array_equal(again, coords)
    assert np.array_equal(projection.cluster(again, PCA), labels)


@pytest.mark.slow
def test_different_seeds_give_different_maps(mixture, fitted_pca):
    vectors, _ = mixture
    _, other = projection.fit_projection(vectors, MapParams(seed=8, pca_min_points=0))
    assert np.abs(other - fitted_pca[1]).max() > 0.1


@pytest.mark.parametrize("which", ["fitted", "fitted_pca"])
def test_clusters_recover_the_mixture_components(mixture, which, request):
    _, component = mixture
    labels = request.getfixturevalue(which)[2]
    assert adjusted_rand_score(component, labels) > 0.9
    assert (labels == -1).mean() < 0.05


def test_cluster_ids_are_numbered_by_size(fitted):
    labels = fitted[2]
    counts = np.bincount(labels[labels >= 0])
    assert (np.diff(counts) <= 0).all()


def test_cluster_defaults_follow_the_documented_rule():
    assert projection.min_cluster_size_for(1_500) == 10
    assert projection.min_cluster_size_for(100_000) == 100
    assert projection.min_cluster_size_for(10_000_000) == 1_000


def test_too_few_points_for_a_cluster_are_all_noise():
    labels = projection.cluster(np.random.default_rng(0).standard_normal((5, 2)), MapParams())
    assert labels.tolist() == [-1] * 5


def test_three_points_make_a_map_and_two_do_not():
    _, coords = projection.fit_projection(draw(np.array([0, 1, 2]), seed=3), RAW)
    assert coords.shape == (3, 2) and np.isfinite(coords).all()
    with pytest.raises(ValueError, match="at least 3"):
        projection.fit_projection(draw(np.array([0, 1]), seed=3), RAW)


# --- placing later points -----------------------------------------------------------------------


@pytest.mark.parametrize("which", ["fitted", "fitted_pca"])
def test_placing_copies_of_fitted_vectors_lands_near_their_fitted_positions(mixture, which, request):
    vectors, _ = mixture
    fitted_projection, coords, labels = request.getfixturevalue(which)
    placed = projection.place(fitted_projection, vectors[:300].copy())
    # Near: much nearer than two fitted points of one cluster typically are to each other.
    rng = np.random.default_rng(0)
    partner = [rng.choice(np.flatnonzero(labels == labels[i])) for i in range(300)]
    typical = np.median(np.linalg.norm(coords[partner] - coords[:300], axis=1))
    assert np.median(np.linalg.norm(placed - coords[:300], axis=1)) < 0.2 * typical
    assert (projection.nearest_cluster(coords, labels, placed) == labels[:300]).mean() > 0.95


def test_placing_new_points_moves_no_fitted_point(fitted):
    fitted_projection, coords, _ = fitted
    returned_before = coords.copy()
    embedding_before = fitted_projection.umap.embedding_.copy()
    projection.place(fitted_projection, draw(np.arange(300) % len(SIZES), seed=4))
    assert np.array_equal(coords, returned_before)
    assert np.array_equal(fitted_projection.umap.embedding_, embedding_before)


def test_placed_coordinates_are_the_callers_own(mixture, fitted):
    vectors, _ = mixture
    fitted_projection, coords, _ = fitted
    embedding_before = fitted_projection.umap.embedding_.copy()
    placed = projection.place(fitted_projection, vectors)  # umap answers these from its fit
    assert np.array_equal(placed, coords)
    assert not np.shares_memory(coords, fitted_projection.umap.embedding_)
    placed += 100.0
    assert np.array_equal(fitted_projection.umap.embedding_, embedding_before)


def test_new_points_from_a_known_centre_get_that_centres_cluster(mixture, fitted_pca):
    _, component = mixture
    fitted_projection, coords, labels = fitted_pca
    expected = majority_cluster(labels, component)
    for centre in (0, 3, 5):
        new = draw(np.full(60, centre), seed=10 + centre)
        clusters = projection.nearest_cluster(coords, labels, projection.place(fitted_projection, new))
        assert (clusters == expected[centre]).mean() > 0.95


def test_placing_is_deterministic_and_survives_pickling(fitted_pca):
    fitted_projection = fitted_pca[0]
    new = draw(np.arange(120) % len(SIZES), seed=5)
    first = projection.place(fitted_projection, new)
    assert np.array_equal(projection.place(fitted_projection, new), first)
    assert np.array_equal(projection.place(pickle.loads(pickle.dumps(fitted_projection)), new), first)


def test_fit_sample_fits_on_a_sample_and_places_the_rest(mixture):
    vectors, component = mixture
    stages = []
    params = MapParams(seed=7, fit_sample=500)
    fitted_projection, coords = projection.fit_projection(vectors, params, progress=stages.append)
    assert fitted_projection.umap.embedding_.shape == (500, 2)
    assert coords.shape == (len(vectors), 2) and np.isfinite(coords).all()
    assert stages[:3] == ["pca", "neighbours", "umap"] and stages[3].startswith("placing")
    assert adjusted_rand_score(component, projection.cluster(coords, params)) > 0.9


# --- noise, nearest cluster, coarse clusters ----------------------------------------------------


def test_nearest_cluster_is_the_nearest_fitted_points_label_noise_included():
    fitted_coords = np.array([[0.0, 0.0], [10.0, 0.0], [5.0, 5.0]])
    fitted_labels = np.array([0, 1, -1])
    new = np.array([[1.0, 0.5], [9.0, -1.0], [5.0, 4.0]])
    assert projection.nearest_cluster(fitted_coords, fitted_labels, new).tolist() == [0, 1, -1]
    assert projection.nearest_cluster(fitted_coords, fitted_labels, np.empty((0, 2))).shape == (0,)


def test_attach_noise_gives_noise_within_reach_its_nearest_cluster_and_leaves_the_dust():
    line = np.column_stack([np.arange(40, dtype=float), np.zeros(40)])  # spacing 1
    coords = np.concatenate([line, [[20.0, 3.0], [20.0, 500.0]]])
    labels = np.array([0] * 20 + [1] * 20 + [-1, -1], dtype=np.int32)
    labels[[5, 30]] = -1  # fringe inside the clusters
    attached = projection.attach_noise(coords, labels)
    # The median 10th-neighbour distance is ~10: the point 3 away joins, the one 500 away stays.
    assert attached[[5, 30, 40, 41]].tolist() == [0, 1, 1, -1]
    assert labels[5] == -1  # the caller's labels are left as they were
    all_noise = np.full(3, -1, dtype=np.int32)
    assert projection.attach_noise(coords[:3], all_noise).tolist() == [-1, -1, -1]


def test_attach_noise_on_a_map_keeps_the_clusters_it_found(fitted):
    _, coords, labels = fitted
    noisy = labels.copy()
    noisy[::50] = -1  # some noise even if HDBSCAN found none
    attached = projection.attach_noise(coords, noisy)
    assert (attached >= 0).all()
    assert np.array_equal(attached[noisy >= 0], noisy[noisy >= 0])


# --- copies and near copies ---------------------------------------------------------------------


def test_distinct_rows_are_exact():
    rows = np.array([[1, 0], [0, 1], [1, 0], [1, 1e-7], [0, 1]], dtype=np.float32)
    distinct, copy_of = projection.distinct_rows(rows)
    assert distinct.tolist() == [0, 1, 3] and copy_of.tolist() == [0, 1, 0, 2, 1]


def test_near_copy_leaders_claim_only_their_own_close_neighbours():
    indices = np.array([[0, 1, 2], [1, 0, 2], [2, 1, 0], [3, 2, 1]])
    close = np.array([[1, 1, 0], [1, 1, 1], [1, 1, 0], [1, 0, 0]], dtype=bool)
    # 1 is 0's near copy; 2 is near 1 but not near 0, and no chain makes it 0's.
    assert projection.near_copy_leaders(indices, close).tolist() == [0, 0, 2, 3]


def test_copies_are_spread_around_their_point_with_the_area_of_their_number():
    anchors = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]], dtype=np.float32)
    group = np.array([0] * 300 + [1, 2])
    coords = projection.spread_copies(anchors, group)
    assert np.array_equal(coords[0], anchors[0]) and np.array_equal(coords[300:], anchors[1:])
    radii = np.linalg.norm(coords[:300], axis=1)
    spacing = projection.COPY_SPACING * 10.0  # of the median distance between the points
    assert len(np.unique(coords[:300], axis=0)) == 300  # no copy hides another
    assert np.isclose(radii.max(), spacing * np.sqrt(299), rtol=1e-4)


def test_near_copies_are_fitted_as_one_point_and_drawn_around_it(mixture):
    vectors, _ = mixture
    base = vectors[:400]
    # 100 near copies of one vector (cosine > 0.99) and 50 exact copies of another.
    rng = np.random.default_rng(0)
    near = unit_rows(base[0] + 0.005 * rng.standard_normal((100, DIM)))
    rows = np.concatenate([base, near, np.repeat(base[1:2], 50, axis=0)])
    fitted_projection, coords = projection.fit_projection(rows, RAW)
    # The exact copies are one point; each fitted near copy stands for up to k others (a
    # leader claims its own near neighbours only, so that no chain of near copies drifts).
    assert 399 < len(fitted_projection.umap.embedding_) <= 399 + 100 // 3
    spread = np.linalg.norm(coords[400:500] - coords[0], axis=1)
    assert 0 < spread.max() < np.linalg.norm(coords[:400] - coords[0], axis=1).max() / 4
    assert len(np.unique(coords[400:], axis=0)) == 150


def test_coarse_clusters_give_every_fine_cluster_a_parent(fitted):
    _, coords, labels = fitted
    parents = projection.coarse_clusters(coords, labels)
    fine = set(labels.tolist()) - {-1}
    assert set(parents) - {-1} == fine and parents[-1] == -1
    coarse = set(parents[f] for f in fine)
    assert coarse == set(range(len(coarse))) and 1 <= len(coarse) < len(fine)
    assert len(coarse) == round(np.sqrt(len(fine)))
    assert parents[0] == 0


def test_coarse_clusters_weigh_fine_clusters_by_size():
    # A big cluster at 0, a small one at 10, and a small one between them, nearer the big one.
    # Unweighted centroids would join the middle one to the big one; Ward on the points joins it
    # to the small one, which costs less than moving the big cluster's centroid.
    coords = np.concatenate([np.zeros((1000, 2)), np.full((10, 2), [10.0, 0.0]), np.full((10, 2), [4.5, 0.0])])
    labels = np.repeat([0, 1, 2], [1000, 10, 10])
    parents = projection.coarse_clusters(coords, labels, n_coarse=2)
    assert parents[1] == parents[2] != parents[0]


@pytest.mark.parametrize("n_coarse", [1, 3, 9, 40])
def test_coarse_clusters_of_single_points_match_scipy_ward(n_coarse):
    points = np.random.default_rng(n_coarse).standard_normal((40, 2))
    parents = projection.coarse_clusters(points, np.arange(40), n_coarse=n_coarse)
    expected = fcluster(linkage(points, "ward"), n_coarse, criterion="maxclust")
    assert adjusted_rand_score(expected, [parents[i] for i in range(40)]) == 1.0


def test_coarse_clusters_of_noise_only():
    assert projection.coarse_clusters(np.zeros((3, 2)), np.full(3, -1)) == {-1: -1}


# --- module hygiene -----------------------------------------------------------------------------


def test_importing_the_module_does_not_load_umap_hdbscan_or_numba():
    code = (
        "import sys, curator.projection; "
        "print(sorted(m for m in ('umap', 'hdbscan', 'numba', 'sklearn') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_numba_cache_dir_follows_curator_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("CURATOR_CACHE", str(tmp_path))
    assert projection.numba_cache_dir() == tmp_path / "numba"
    monkeypatch.delenv("CURATOR_CACHE")
    assert projection.numba_cache_dir().parts[-3:] == (".cache", "curator", "numba")
