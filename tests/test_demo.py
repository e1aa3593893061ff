"""`curator demo`: the shipped SmolLM2-generated demo set, ingested and mapped offline."""
from __future__ import annotations

import hashlib
import json

import pytest

from curator import demo
from jobs.demo import DEMO_FILE, MANIFEST
from tests.conftest import run_console

SOURCES = {"demo-howto", "demo-explain", "demo-creative", "demo-classify", "demo-identity", "demo-sensitive"}
# What a refusal or an AI disclaimer opens with, in the model's own words (checked by hand
# against the shipped answers; curator's `signals` command has the full rules).
REFUSAL = ("response ILIKE 'I''m sorry%' OR response ILIKE 'I am sorry%' OR response ILIKE 'I cannot%' "
           "OR response ILIKE 'I can''t%' OR response ILIKE '%as an ai%' OR response ILIKE '%I''m not able to%'")


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


@pytest.fixture(scope="module")
def demo_db(tmp_path_factory):
    db = tmp_path_factory.mktemp("demo") / "demo.duckdb"
    first = run_console("--db", db, "demo")
    assert first.returncode == 0, first.stderr
    return db, first.stdout


def _json(db, *args):
    result = run_console("--db", db, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_shipped_file_matches_its_manifest_and_the_prompt_lists(manifest):
    assert hashlib.sha256(DEMO_FILE.read_bytes()).hexdigest() == manifest["sha256"]
    assert manifest["file"] == DEMO_FILE.name and manifest["bytes"] == DEMO_FILE.stat().st_size
    # The prompts in curator/demo.py are the ones the shipped answers were generated from:
    # change them and scripts/make_demo_set.py must be run again.
    assert manifest["prompts_sha256"] == demo.prompts_sha256(demo.sources())
    assert set(manifest["sources"]) == SOURCES
    assert manifest["generator"]["model"] == "SmolLM2-135M-Instruct"
    assert manifest["pairs"] == sum(s["pairs"] for s in manifest["sources"].values()) >= 2400


def test_demo_builds_the_database_and_its_map(demo_db, manifest):
    db, out = demo_db
    stats = _json(db, "stats")
    assert stats["pairs"] == manifest["pairs"]
    assert {k: v for k, v in stats["sources"].items()} == {k: v["pairs"] for k, v in manifest["sources"].items()}
    assert f"{stats['pairs']:,} pairs from 6 sources" in out
    assert f"map prompt: {stats['pairs']:,} points fitted" in out
    mapped = _json(db, "sql", "SELECT count(*) AS n FROM pairs_view WHERE x IS NOT NULL AND topic IS NOT NULL")
    assert mapped == [{"n": stats["pairs"]}]
    # The few-shot classification blob (one-word answers to templated questions, like GPT4All's
    # P3) lands in clusters of its own: nearly all of it sits in clusters that are nearly all
    # classification (purity, not exact disjointness: a stray cluster may mix; here the
    # mammal/bird/fish questions share one with a few how-to prompts, 24 of 30).
    rows = _json(db, "sql", "SELECT cluster, count(*) AS n, count(*) FILTER (WHERE source = 'demo-classify') AS s "
                            "FROM pairs_view WHERE cluster >= 0 GROUP BY 1")
    blob = sum(r["s"] for r in rows)
    in_pure_clusters = sum(r["s"] for r in rows if r["s"] >= 0.9 * r["n"])
    assert blob > 0.9 * stats["sources"]["demo-classify"] and in_pure_clusters >= 0.9 * blob


def test_demo_again_changes_nothing(demo_db):
    db, _ = demo_db
    before = _json(db, "sql", "SELECT id, x, y, cluster FROM pairs_view ORDER BY id")
    again = run_console("--db", db, "demo")
    assert again.returncode == 0
    assert "already ingested, nothing to do" in again.stdout and "0 placed without refitting" in again.stdout
    assert _json(db, "sql", "SELECT id, x, y, cluster FROM pairs_view ORDER BY id") == before


def test_demo_set_holds_what_curation_is_for(demo_db, manifest):
    db, _ = demo_db
    (row,) = _json(db, "sql", f"""
        SELECT count(*) FILTER (WHERE model = 'SmolLM2-135M-Instruct') AS by_smollm2,
               count(*) FILTER (WHERE finish_reason = 'length') AS truncated,
               count(*) FILTER (WHERE finish_reason IS NULL) AS without_reason,
               count(*) FILTER (WHERE {REFUSAL}) AS refusals,
               count(*) FILTER (WHERE source = 'demo-classify' AND response NOT LIKE '% %') AS one_word,
               count(*) FILTER (WHERE source = 'demo-identity') AS identity,
               count(DISTINCT prompt) FILTER (WHERE source = 'demo-identity') AS identity_questions,
               count(DISTINCT response) FILTER (WHERE source = 'demo-identity') AS identity_answers
        FROM pairs_view""")
    assert row["by_smollm2"] == manifest["pairs"] and row["without_reason"] == 0  # ingest kept both fields
    assert row["truncated"] == manifest["truncated"] > 100            # rambling cut at max_tokens
    assert row["refusals"] >= 20                                      # refusals and AI disclaimers
    assert row["one_word"] > 0.5 * manifest["sources"]["demo-classify"]["pairs"]  # the one-word blob
    # the identity family: a few questions asked hundreds of times, answered in many ways
    assert row["identity_questions"] <= 16 and row["identity"] >= 300 and row["identity_answers"] > 100
