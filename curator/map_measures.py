"""How readable a map is, measured: the figures `bench/map_quality.py` reports and the tests
assert on real mixtures.

- **noise share**: the share of points HDBSCAN left in no cluster (-1).
- **halo share**: the share of points whose 10th nearest 2-D neighbour is farther than 5x the
  median of that distance over all points: the sparse dust that fills the view around a map.
- **family purity**: the mean share of each point's 10 nearest 2-D neighbours that come from the
  same family (a kind of data: code, P3 templates, dialogues, ...): is what is near on the
  screen of one kind?
- **label coverage**: for each cluster, the mean over its label's words of the share of its
  member texts that contain the word, averaged over clusters: does a label say what most of its
  pairs are, or name a passage a few of them quote?
- **10-NN preservation**: the mean share of each point's 10 nearest 2-D neighbours that are
  among its 10 nearest in the embedding (cosine), tie-aware (a 2-D neighbour counts when its
  cosine is at least the point's 10th best), so exact duplicates do not make it a lottery.

Pure functions over arrays; nothing here reads the database.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

NOISE = -1
K = 10
HALO_FACTOR = 5.0


def noise_share(clusters: np.ndarray) -> float:
    clusters = np.asarray(clusters)
    return float((clusters == NOISE).mean()) if len(clusters) else 0.0


def neighbours_2d(coords: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """(distances, indices) of each point's k nearest other points on the map."""
    from scipy.spatial import cKDTree

    coords = np.asarray(coords, dtype=np.float64)
    distances, indices = cKDTree(coords).query(coords, k=k + 1)
    return distances[:, 1:], indices[:, 1:]


def halo_share(coords: np.ndarray, k: int = K, factor: float = HALO_FACTOR) -> float:
    """Share of points whose k-th nearest 2-D neighbour is farther than `factor` x the median."""
    if len(coords) <= k:
        return 0.0
    kth = neighbours_2d(coords, k)[0][:, -1]
    return float((kth > factor * np.median(kth)).mean())


def family_purity(coords: np.ndarray, families: Sequence[str] | np.ndarray, k: int = K) -> float:
    """Mean share of each point's k nearest 2-D neighbours from its own family."""
    families = np.asarray(families)
    if len(families) <= k:
        return 1.0
    _, near = neighbours_2d(coords, k)
    return float((families[near] == families[:, None]).mean())


_WORD = re.compile(r"[^\W_]+(?:\+\+|#)?")


def label_words(label: str) -> list[str]:
    """The words of a label ("movie review · sentiment" -> movie, review, sentiment)."""
    return _WORD.findall(label.lower())


def label_coverage(texts: Sequence[str], clusters: np.ndarray, labels: dict[int, str]) -> float:
    """Mean over clusters (noise and quoted labels left out) of the mean share of the cluster's
    texts that contain each word of its label as a whole word."""
    clusters = np.asarray(clusters)
    shares = []
    for cluster, label in labels.items():
        if cluster == NOISE or label.startswith("“"):
            continue
        members = np.flatnonzero(clusters == cluster)
        words = label_words(label)
        if not len(members) or not words:
            continue
        member_words = [set(_WORD.findall(texts[i].lower())) for i in members]
        shares.append(np.mean([np.mean([w in found for found in member_words]) for w in words]))
    return float(np.mean(shares)) if shares else 0.0


def _unit(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, dtype=np.float32)
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


def knn_preservation(
    vectors: np.ndarray, coords: np.ndarray, k: int = K, sample: int | None = 5_000, seed: int = 0
) -> float:
    """Tie-aware 10-NN preservation (see above), over a seeded sample of `sample` points (all
    when None or fewer): exact cosine neighbours of the sample against every point."""
    unit = _unit(vectors)
    n = len(unit)
    if n <= k:
        return 1.0
    rows = np.arange(n) if sample is None or n <= sample else np.random.default_rng(seed).choice(n, sample, False)
    kth = np.empty(len(rows), dtype=np.float32)
    for start in range(0, len(rows), 1024):
        chosen = rows[start : start + 1024]
        sims = unit[chosen] @ unit.T
        sims[np.arange(len(chosen)), chosen] = -np.inf
        kth[start : start + len(chosen)] = -np.partition(-sims, k - 1, axis=1)[:, k - 1]
    _, near = neighbours_2d(coords, k)
    sims = np.einsum("nd,nkd->nk", unit[rows], unit[near[rows]])
    return float((sims >= kth[:, None] - 1e-6).mean())
