"""`curator demo`: the main job on the embedded defaults."""
from __future__ import annotations

import hashlib

from jobs.demo import write_demo_file
from curator import demo


def test_demo_builds_the_database_and_is_idempotent(curator):
    first = curator("demo")
    stats = curator.json("stats")
    assert stats["pairs"] == sum(1 for _ in demo.records())
    assert all(name.startswith("synthetic-") for name in stats["sources"])
    assert set(stats["sources"]) == {"synthetic-howto", "synthetic-explain", "synthetic-chat",
                                     "synthetic-sentiment", "synthetic-identity"}
    assert f"{stats['pairs']:,} pairs from 5 sources" in first.stdout
    again = curator("demo")
    assert "already ingested, nothing to do" in again.stdout
    assert curator.json("stats")["pairs"] == stats["pairs"]


def test_demo_set_is_the_same_bytes_everywhere(tmp_path):
    digests = {hashlib.sha256(write_demo_file(tmp_path / d).read_bytes()).hexdigest() for d in ("a", "b")}
    assert len(digests) == 1


def test_demo_set_holds_what_curation_is_for(curator):
    curator("demo")
    stats = curator.json("stats")
    assert stats["exact_duplicates"] >= 120
    rows = curator.json("sql", "SELECT count(*) FILTER (WHERE response ILIKE 'As an AI language model%') AS refusals, "
                                "count(*) FILTER (WHERE source = 'synthetic-sentiment' AND response NOT LIKE '% %') AS one_word "
                                "FROM pairs_view")
    assert rows[0]["refusals"] > 50 and rows[0]["one_word"] == stats["sources"]["synthetic-sentiment"]
