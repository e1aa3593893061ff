"""The blob report on real data: mixed with 2,000 Alpaca pairs, the real P3 templates and
FastChat's repeated identity questions must rank worst (tests/dedup_data.py builds the set)."""

from __future__ import annotations

import numpy as np
import pytest

from curator import blobs
from tests import dedup_data
from tests.conftest import Curator, needs_data, query
from tests.dedup_data import template  # noqa: F401 (a fixture)

BLOB_SOURCES = {f"p3/{t}" for t in dedup_data.P3_TEMPLATES} | {dedup_data.IDENTITY}


@pytest.fixture(scope="module")
def ranked(template, tmp_path_factory):
    db = dedup_data.copy_to(template, tmp_path_factory.mktemp("blobs") / "b.duckdb")
    return db, Curator(db).json("blobs")


def is_blob_cluster(entry: dict) -> bool:
    """A cluster most of whose pairs come from a P3 template or the identity set."""
    blob = sum(n for source, n in entry["top_sources"].items() if source in BLOB_SOURCES)
    return blob > entry["size"] / 2


@needs_data
@pytest.mark.slow
def test_p3_templates_and_identity_questions_rank_worst(ranked):
    _, entries = ranked
    sources = [e for e in entries if e["kind"] == "source"]
    assert {e["name"] for e in sources[: len(BLOB_SOURCES)]} == BLOB_SOURCES
    assert {e["name"] for e in sources[len(BLOB_SOURCES) :]} == {"alpaca", "planted"}
    alpaca = next(e for e in sources if e["name"] == "alpaca")
    assert alpaca["score"] < min(e["score"] for e in sources if e["name"] in BLOB_SOURCES) / 2

    clusters = [e for e in entries if e["kind"] == "cluster"]
    blob_scores = np.array([e["score"] for e in clusters if is_blob_cluster(e)])
    other_scores = np.array([e["score"] for e in clusters if not is_blob_cluster(e)])
    assert len(blob_scores) >= 10 and len(other_scores) >= 20
    # Nearly every (blob cluster, Alpaca cluster) pair is ordered right, and the top of the
    # list is all blobs: the P3 clusters and the identity questions' clusters.
    ordered = (blob_scores[:, None] > other_scores[None, :]).mean()
    assert ordered >= 0.95, ordered
    assert all(is_blob_cluster(e) for e in clusters[:10])
    top = {source for e in clusters[:10] for source in e["top_sources"]}
    assert dedup_data.IDENTITY in top and any(s.startswith("p3/") for s in top)


@needs_data
@pytest.mark.slow
def test_reasons_say_why(ranked):
    _, entries = ranked
    by_name = {e["name"]: e for e in entries if e["kind"] == "source"}
    assert any(r.endswith("% short") for r in by_name["p3/ag_news_classify"]["reasons"])
    assert any("responses repeat" in r for r in by_name["p3/wiki_qa_Is_This_True_"]["reasons"])
    # Most of the identity set is in three clusters (the map fits its near copies once; it was
    # cut into a cluster per model name before), each said to be alike or repetitive.
    clusters = [e for e in entries if e["kind"] == "cluster"]
    identity = sorted(clusters, key=lambda e: -e["top_sources"].get(dedup_data.IDENTITY, 0))[:3]
    assert sum(e["top_sources"].get(dedup_data.IDENTITY, 0) for e in identity) >= 0.6 * 500
    alike = ("mean similarity", "responses repeat", "response lengths alike")
    assert all(any(r.startswith(alike) for r in e["reasons"]) for e in identity)
    assert any("of prompts share" in r for e in entries for r in e["reasons"])


@needs_data
@pytest.mark.slow
def test_json_shape_and_order(ranked):
    db, entries = ranked
    assert [e["score"] for e in entries] == sorted((e["score"] for e in entries), reverse=True)
    for e in entries:
        assert e["kind"] in ("cluster", "coarse", "source")
        assert isinstance(e["name"] if e["kind"] == "source" else e["id"], str if e["kind"] == "source" else int)
        assert isinstance(e["label"], str) and isinstance(e["size"], int) and e["size"] > 0
        assert 0 <= e["score"] <= 1 and all(isinstance(r, str) for r in e["reasons"])
        assert set(e["metrics"]) >= {
            "mean_similarity",
            "length_spread",
            "response_distinct_ngrams",
            "prompt_distinct_ngrams",
            "short",
            "refusal",
            "truncated",
            "malformed",
        }
    live = query(db, "SELECT count(*) FROM pairs WHERE deleted_op IS NULL")[0][0]
    assert sum(e["size"] for e in entries if e["kind"] == "source") == live
    noise = query(db, "SELECT count(*) FROM pairs_view WHERE cluster = -1")[0][0]
    assert sum(e["size"] for e in entries if e["kind"] == "cluster") == live - noise
    assert sum(e["size"] for e in entries if e["kind"] == "coarse") == live - noise


@needs_data
@pytest.mark.slow
def test_coarse_blobs_list_their_fine_parts_worst_first(ranked):
    db, entries = ranked
    fine = {e["id"]: e for e in entries if e["kind"] == "cluster"}
    coarse = [e for e in entries if e["kind"] == "coarse"]
    assert coarse and sorted(p["id"] for e in coarse for p in e["parts"]) == sorted(fine)
    for e in coarse:
        assert e["size"] == sum(p["size"] for p in e["parts"])
        assert all(fine[p["id"]]["parent"] == e["id"] for p in e["parts"])
        assert [p["score"] for p in e["parts"]] == sorted((p["score"] for p in e["parts"]), reverse=True)
    only_coarse = Curator(db).json("blobs", "--level", "coarse")
    assert {e["kind"] for e in only_coarse} == {"coarse", "source"}
    assert [e["id"] for e in only_coarse if e["kind"] == "coarse"] == [e["id"] for e in coarse]


@needs_data
@pytest.mark.slow
def test_deleted_pairs_leave_the_report_and_table_output(template, db, curator):
    dedup_data.copy_to(template, db)
    curator("delete", "--source", "p3/ag_news_classify", "--reason", "test")
    entries = curator.json("blobs")
    assert "p3/ag_news_classify" not in {e.get("name") for e in entries}
    assert all("p3/ag_news_classify" not in e.get("top_sources", {}) for e in entries)
    out = curator("blobs", "--limit", "3").output.splitlines()
    assert out[0].split()[:3] == ["kind", "cluster/source", "label"] and len(out) == 2 + 3


def test_measures_on_known_texts():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(50, 8))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    pairwise = vectors @ vectors.T
    assert blobs.mean_similarity(vectors) == pytest.approx(pairwise[~np.eye(50, dtype=bool)].mean())
    assert blobs.mean_similarity(vectors[:1]) is None
    assert blobs.distinct_ngram_ratio(["Positive", "Positive", "Negative", "Positive"]) == 0.5
    assert blobs.distinct_ngram_ratio(["a b", "c d"]) == 1.0
    assert blobs.common_phrase(["Did the reviewer enjoy the film?", "did the reviewer enjoy it", "Was it good?"]) == (
        "did the reviewer enjoy",
        pytest.approx(2 / 3),
    )
    assert blobs.quartile_spread(1, 1) == 0 and blobs.quartile_spread(10, 30) == 0.5
