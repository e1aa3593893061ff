"""`curator demo`: the main job on the embedded defaults."""
from __future__ import annotations

import hashlib
import json

import pytest

from curator import demo
from jobs.demo import write_demo_file
from tests.conftest import run_console


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


def test_demo_builds_the_database_and_its_map(demo_db):
    db, out = demo_db
    stats = _json(db, "stats")
    assert stats["pairs"] == sum(1 for _ in demo.records())
    assert set(stats["sources"]) == {"synthetic-howto", "synthetic-explain", "synthetic-chat",
                                     "synthetic-sentiment", "synthetic-identity"}
    assert f"{stats['pairs']:,} pairs from 5 sources" in out
    assert f"map prompt: {stats['pairs']:,} points fitted" in out
    mapped = _json(db, "sql", "SELECT count(*) AS n FROM pairs_view WHERE x IS NOT NULL AND topic IS NOT NULL")
    assert mapped == [{"n": stats["pairs"]}]
    # The one-word sentiment blob lands in clusters of its own: nearly all of it sits in clusters
    # that are nearly all sentiment (purity, not exact disjointness: one stray cluster may mix).
    rows = _json(db, "sql", "SELECT cluster, count(*) AS n, count(*) FILTER (WHERE source = 'synthetic-sentiment') AS s "
                            "FROM pairs_view WHERE cluster >= 0 GROUP BY 1")
    sentiment = sum(r["s"] for r in rows)
    in_pure_clusters = sum(r["s"] for r in rows if r["s"] >= 0.9 * r["n"])
    assert sentiment > 0.9 * stats["sources"]["synthetic-sentiment"] and in_pure_clusters >= 0.95 * sentiment


def test_demo_again_changes_nothing(demo_db):
    db, _ = demo_db
    before = _json(db, "sql", "SELECT id, x, y, cluster FROM pairs_view ORDER BY id")
    again = run_console("--db", db, "demo")
    assert again.returncode == 0
    assert "already ingested, nothing to do" in again.stdout and "0 placed without refitting" in again.stdout
    assert _json(db, "sql", "SELECT id, x, y, cluster FROM pairs_view ORDER BY id") == before


def test_demo_set_is_the_same_bytes_everywhere(tmp_path):
    digests = {hashlib.sha256(write_demo_file(tmp_path / d).read_bytes()).hexdigest() for d in ("a", "b")}
    assert len(digests) == 1


def test_demo_set_holds_what_curation_is_for(demo_db):
    db, _ = demo_db
    stats = _json(db, "stats")
    assert stats["exact_duplicates"] >= 120
    (row,) = _json(db, "sql", "SELECT count(*) FILTER (WHERE response ILIKE 'As an AI language model%') AS refusals, "
                              "count(*) FILTER (WHERE source = 'synthetic-sentiment' AND response NOT LIKE '% %') AS one_word "
                              "FROM pairs_view")
    assert row["refusals"] > 50 and row["one_word"] == stats["sources"]["synthetic-sentiment"]
