"""The map of a real mixture is readable (issue 24's measures, curator.map_measures): built from
../shared/data as bench/map_quality.py builds it, a few thousand pairs (500 records a family:
general instructions, code, P3 templates, HH dialogues, roleplay, canned identity answers),
mapped by `curator map --fast` as a user would.

The figures the full 86k mixture gives, and what they mean, are in docs/map.md."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

import storage
from bench import mixtures
from curator import embedding, map_measures, projection
from storage import embeddings as vector_rows
from storage import maps as map_rows
from tests.conftest import DATA, needs_data

pytestmark = [pytest.mark.slow, needs_data]


@pytest.fixture(scope="module")
def mapped(tmp_path_factory):
    db = tmp_path_factory.mktemp("quality") / "mixture.duckdb"
    mixtures.build(db, DATA, per_family=500)
    from tests.conftest import Curator

    Curator(db)("map", "--fast")
    con = storage.connect_read_only(db)
    try:
        row = map_rows.default(con)
        points = map_rows.points(con, row.id)
        _, prompts, responses = vector_rows.pair_texts(con, points["pair_id"])
        sources = dict(con.execute("SELECT id, source FROM pairs").fetchall())
        labels = dict(
            con.execute("SELECT id, label FROM clusters WHERE map_id = ? AND level = 'fine'", [row.id]).fetchall()
        )
        _, vectors = vector_rows.load_vectors(con, row.set_id, points["pair_id"])
    finally:
        con.close()
    return {
        "coords": np.column_stack([points["x"], points["y"]]),
        "clusters": points["cluster"],
        "texts": embedding.field_texts(prompts, responses, row.field),
        "families": np.array([mixtures.family_of(sources[int(i)]) for i in points["pair_id"]]),
        "labels": labels,
        "vectors": vectors,
    }


def test_the_mixture_holds_every_family(mapped):
    families, counts = np.unique(mapped["families"], return_counts=True)
    # P3 spreads its 500 over its 294 templates: one record each.
    assert set(families) == set(mixtures.FAMILIES) and counts.min() >= 250


def test_little_noise_and_no_halo_of_dust(mapped):
    assert map_measures.noise_share(mapped["clusters"]) <= 0.15
    assert map_measures.halo_share(mapped["coords"]) <= 0.03


def test_what_is_near_on_the_map_is_of_one_kind(mapped):
    # Six families of equal size, the general instructions overlapping all the others in
    # what they ask about: 0.71 measured (1/6 by chance).
    assert map_measures.family_purity(mapped["coords"], mapped["families"]) >= 0.65
    # The 10 nearest neighbours on the map are neighbours in the vectors too (1/2770 by chance).
    assert map_measures.knn_preservation(mapped["vectors"], mapped["coords"]) >= 0.3


def test_labels_say_what_their_cluster_holds(mapped):
    # Each label word is on average in 39% of its cluster's prompts (the old term-frequency
    # labels: 33% on an 86k mixture, names of passages a few prompts quote).
    assert map_measures.label_coverage(mapped["texts"], mapped["clusters"], mapped["labels"]) >= 0.35


def test_canned_identity_answers_are_a_blob_as_big_as_their_number(mapped):
    identity = mapped["families"] == "identity"
    coords = mapped["coords"][identity]
    # 500 conversations opening on a handful of questions: every pair has a point of its own...
    assert len(np.unique(coords, axis=0)) == identity.sum()
    # ...and most of them sit together in a few clusters, not scattered as dust.
    clusters, counts = np.unique(mapped["clusters"][identity], return_counts=True)
    assert np.sort(counts)[::-1][:3].sum() >= 0.7 * identity.sum()


def test_the_layout_starts_from_the_spectral_embedding(mapped):
    # UMAP fell back to a random start on real mixtures before near copies were fitted once:
    # the dust came from there.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        projection.fit_projection(mapped["vectors"], projection.MapParams())
    assert not [w for w in caught if "random initialisation" in str(w.message)]
