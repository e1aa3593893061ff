"""Duplicates on real data: Alpaca, P3 templates and FastChat's identity questions, with
near-duplicates and conflicting answers planted from real Alpaca records (tests/dedup_data.py)."""

from __future__ import annotations

import json

import numpy as np
import pytest

import storage
from curator import duplicates as dedup
from storage import embeddings as vector_rows
from tests import dedup_data
from tests.conftest import Curator, needs_data, query
from tests.dedup_data import template  # noqa: F401 (a fixture)


@pytest.fixture(scope="module")
def deduped(template, tmp_path_factory):
    """A copy after `curator duplicates` at the default threshold, and its JSON report."""
    db = dedup_data.copy_to(template, tmp_path_factory.mktemp("deduped") / "d.duckdb")
    return db, Curator(db).json("duplicates")


@pytest.fixture
def mapped(template, db):
    return dedup_data.copy_to(template, db)


@pytest.fixture(scope="module")
def twins(template) -> dict[str, list[tuple[int, int]]]:
    """{kind: [(original id, planted id)]} of the planted near-duplicates and conflicts."""
    con = storage.connect_read_only(template)
    try:
        found: dict[str, list[tuple[int, int]]] = {}
        for row in dedup_data.planted_rows():
            original = con.execute(
                "SELECT id FROM pairs WHERE source = 'alpaca' AND prompt = ?", [row["of"]]
            ).fetchone()
            twin = con.execute(
                "SELECT id FROM pairs WHERE source = 'planted' AND prompt = ? AND response = ?",
                [row["prompt"], row["response"]],
            ).fetchone()
            found.setdefault(row["kind"], []).append((original[0], twin[0]))
        return found
    finally:
        con.close()


def rows_of(db) -> dict[int, tuple]:
    return {r[0]: r[1:] for r in query(db, "SELECT id, dup_group, dup_kind, dup_keep, conflict FROM pairs_view")}


def prompt_cosines(db, pairs: list[tuple[int, int]]) -> list[float]:
    con = storage.connect_read_only(db)
    try:
        set_id = con.execute("SELECT set_id FROM maps WHERE is_default").fetchone()[0]
        cosines = []
        for a, b in pairs:
            _, vectors = vector_rows.load_vectors(con, set_id, np.array([a, b]))
            cosines.append(float(vectors[0] @ vectors[1]))
        return cosines
    finally:
        con.close()


@needs_data
@pytest.mark.slow
def test_whitespace_and_case_edits_are_exact_duplicates(deduped, twins):
    db, _ = deduped
    rows = rows_of(db)
    for original, twin in twins["exact"]:
        group, kind, keep, _ = rows[original]
        assert rows[twin][0] == group and kind == "exact" == rows[twin][1]
        assert keep != rows[twin][2]  # exactly one of the two is kept
    # Every exact set really is one normalized text; the identity set's repeats are found.
    assert (
        query(
            db,
            "SELECT count(*) FROM (SELECT dup_group FROM pairs_view p JOIN pairs USING (id) "
            "WHERE dup_kind = 'exact' GROUP BY dup_group HAVING count(DISTINCT pair_hash) > 1)",
        )[0][0]
        == 0
    )
    identity_groups = query(
        db,
        "SELECT dup_group, count(*) FROM pairs_view WHERE source = 'dummy_conversation' "
        "AND dup_kind = 'exact' GROUP BY 1 ORDER BY 2 DESC",
    )
    assert identity_groups[0][1] >= 150  # "Have a nice day!" -> "You too!", repeated


@needs_data
@pytest.mark.slow
def test_paraphrases_are_semantic_duplicates_at_the_threshold_and_keep_the_better_answer(deduped, twins):
    db, report = deduped
    rows = rows_of(db)
    pairs = twins["paraphrase"]
    cosines = prompt_cosines(db, pairs)
    found = 0
    for (original, twin), cosine in zip(pairs, cosines):
        together = rows[original][0] is not None and rows[original][0] == rows[twin][0]
        assert together == (cosine >= report["params"]["threshold"]), (cosine, rows[original], rows[twin])
        if together:
            found += 1
            # The original's complete answer beats the copy cut mid-sentence.
            assert rows[original][1] == "semantic" and rows[original][2] and not rows[twin][2]
    assert found >= 5  # light paraphrases mostly stay above 0.95 with MiniLM


@needs_data
@pytest.mark.slow
def test_lower_threshold_finds_every_paraphrase_and_every_set_respects_it(mapped, curator, twins):
    report = curator.json("duplicates", "--threshold", "0.9")
    rows = rows_of(mapped)
    for original, twin in twins["paraphrase"]:
        assert rows[original][0] == rows[twin][0] is not None and rows[original][2] and not rows[twin][2]
    # Each member of a semantic set has a partner in it whose prompt is the same or at cosine >= 0.9.
    members: dict[int, list[tuple[int, int]]] = {}
    for pair_id, group, prompt_hash in query(
        mapped,
        "SELECT p.id, v.dup_group, p.prompt_hash FROM pairs p "
        "JOIN pairs_view v USING (id) WHERE v.dup_kind = 'semantic'",
    ):
        members.setdefault(group, []).append((pair_id, prompt_hash))
    con = storage.connect_read_only(mapped)
    try:
        set_id = con.execute("SELECT set_id FROM maps WHERE is_default").fetchone()[0]
        for group in members.values():
            ids = np.array(sorted(i for i, _ in group))
            _, vectors = vector_rows.load_vectors(con, set_id, ids)
            similar = vectors @ vectors.T >= 0.9 - 1e-6
            hashes = np.array([dict(group)[i] for i in ids])
            linked = similar | (hashes[:, None] == hashes[None, :])
            np.fill_diagonal(linked, False)
            assert linked.any(axis=1).all()
    finally:
        con.close()
    assert report["semantic_groups"] >= 10 + 1


@needs_data
@pytest.mark.slow
def test_same_prompt_with_another_answer_is_a_conflict(deduped, twins):
    db, report = deduped
    expected = {i for pair in twins["conflict"] for i in pair}
    conflicted = {r[0] for r in query(db, "SELECT id FROM pairs_view WHERE conflict")}
    # Found, and nothing else on this real data is flagged: the identity set's reworded answers
    # to one question ("I am Vicuna..." / "My name is Vicuna...") are variants, not conflicts.
    assert conflicted == expected and report["conflicts"] == len(expected)
    rows = rows_of(db)
    for original, twin in twins["conflict"]:
        assert rows[original][0] is None or rows[original][0] != rows[twin][0]


@needs_data
@pytest.mark.slow
def test_rerun_replaces_and_records_params(mapped, curator):
    first = curator.json("duplicates", "--threshold", "0.99")
    grouped_first = {r[0] for r in query(mapped, "SELECT id FROM pairs_view WHERE dup_group IS NOT NULL")}
    second = curator.json("duplicates", "--threshold", "0.9", "--neighbours", "8")
    assert second["run_id"] == first["run_id"] + 1
    assert query(mapped, "SELECT DISTINCT run_id FROM duplicates") == [(second["run_id"],)]
    params = [json.loads(p) for (p,) in query(mapped, "SELECT params FROM duplicate_runs ORDER BY id")]
    assert (params[0]["threshold"], params[1]["threshold"], params[1]["neighbours"]) == (0.99, 0.9, 8)
    assert params[1]["map"] == "prompt" and params[1]["model"] == "all-MiniLM-L6-v2"
    assert second["pairs_in_groups"] > first["pairs_in_groups"]
    jobs = query(mapped, "SELECT kind, status FROM jobs WHERE kind = 'duplicates'")
    assert jobs == [("duplicates", "done")] * 2
    # What is a duplicate at 0.99 still is at 0.9.
    assert grouped_first <= {r[0] for r in query(mapped, "SELECT id FROM pairs_view WHERE dup_group IS NOT NULL")}


@needs_data
@pytest.mark.slow
def test_deleted_pairs_take_no_part(mapped, curator, twins):
    originals = [original for original, _ in twins["exact"]]
    listed = ", ".join(map(str, originals))
    curator("delete", "--where", f"id IN ({listed})", "--reason", "test")
    report = curator.json("duplicates")
    rows = rows_of(mapped)
    for original, twin in twins["exact"]:
        assert rows[original][0] is None and rows[twin][0] is None  # the twin has no live copy left
    assert query(mapped, f"SELECT count(*) FROM duplicates WHERE pair_id IN ({listed})") == [(0,)]
    assert report["pairs"] == query(mapped, "SELECT count(*) FROM pairs WHERE deleted_op IS NULL")[0][0]


@needs_data
@pytest.mark.slow
def test_json_and_table_output(deduped, mapped, curator):
    _, report = deduped
    for key in (
        "job_id",
        "run_id",
        "map",
        "field",
        "pairs",
        "exact_groups",
        "semantic_groups",
        "pairs_in_groups",
        "not_kept",
        "conflicts",
        "params",
        "largest_groups",
    ):
        assert key in report
    assert report["map"] == "prompt" and report["field"] == "prompt" and report["without_vectors"] == 0
    assert report["not_kept"] == report["pairs_in_groups"] - report["exact_groups"] - report["semantic_groups"]
    largest = report["largest_groups"]
    assert [g["group"] for g in largest] == list(range(1, len(largest) + 1))
    assert all(a["size"] >= b["size"] for a, b in zip(largest, largest[1:]))
    assert {"group", "kind", "size", "keep_id", "prompt", "response"} <= set(largest[0])
    out = curator("duplicates").output
    assert "exact sets" in out and "conflicting pairs" in out and "group" in out


@needs_data
def test_response_vectors_of_the_same_model_judge_the_answers(tmp_path, curator, db):
    """With a response embedding set beside the prompt map (same model), answers are compared
    by cosine, not by words: word-based judging is switched off here to show it."""
    records = dedup_data.alpaca_records()
    planted = dedup_data.planted_rows()
    originals = {row["of"] for row in planted}
    rows = [
        {"prompt": dedup_data.prompt_of(r), "response": r["output"], "source": "alpaca"}
        for r in records[: dedup_data.ALPACA]
        if dedup_data.prompt_of(r) in originals
    ]
    rows += [
        {"prompt": dedup_data.prompt_of(r), "response": r["output"], "source": "alpaca"} for r in records[3000:3150]
    ]
    rows += [{k: row[k] for k in ("prompt", "response", "source")} for row in planted]
    source = tmp_path / "small.jsonl"
    source.write_text("".join(json.dumps(r) + "\n" for r in rows))
    curator("ingest", source)
    curator("map", "--fast")
    curator("embed", "--fast", "--field", "response")
    report = curator.json(
        "duplicates", "--text-threshold", "1", "--text-diverge-below", "0.01", "--diverge-below", "0.6"
    )
    by_prompt = {}
    for pair_id, prompt, group, conflict in query(db, "SELECT id, prompt, dup_group, conflict FROM pairs_view"):
        by_prompt.setdefault(prompt, []).append((pair_id, group, conflict))
    paraphrases = [row for row in planted if row["kind"] == "paraphrase"]
    group_of = {prompt: members[0][1] for prompt, members in by_prompt.items()}
    together = sum(
        group_of[row["of"]] is not None and group_of[row["of"]] == group_of[row["prompt"]] for row in paraphrases
    )
    assert together >= 8  # cut answers keep a response cosine >= 0.95 (their word Jaccard is < 1)
    conflicts = [row for row in planted if row["kind"] == "conflict"]
    assert all(all(c for _, _, c in by_prompt[row["prompt"]]) for row in conflicts)
    assert report["conflicts"] >= 2 * len(conflicts)


@needs_data
@pytest.mark.slow
def test_signals_are_computed_first_when_missing(mapped, curator):
    con = storage.connect(mapped)
    con.execute("DELETE FROM signals")
    con.close()
    curator("duplicates")
    assert query(
        mapped, "SELECT count(*) FROM pairs p WHERE NOT EXISTS (SELECT 1 FROM signals s WHERE s.pair_id = p.id)"
    ) == [(0,)]
    assert query(mapped, "SELECT status FROM jobs WHERE kind = 'signals' ORDER BY id DESC LIMIT 1") == [("done",)]


@needs_data
def test_no_map_is_a_clear_error(tmp_path):
    db = tmp_path / "empty.duckdb"
    source = tmp_path / "one.jsonl"
    source.write_text('{"prompt": "hello there", "response": "hi"}\n')
    Curator(db)("ingest", source)
    result = Curator(db)("duplicates", ok=False)
    assert result.exit_code != 0 and "no map yet" in result.output


# --- the search itself ------------------------------------------------------------------------


@needs_data
@pytest.mark.slow
def test_partitioned_search_agrees_with_the_exact_one_on_real_vectors(template, monkeypatch):
    con = storage.connect_read_only(template)
    try:
        _, vectors = vector_rows.load_vectors(con, 1)
    finally:
        con.close()
    exact = dedup.near_pairs(vectors, 0.9, 16)
    # Force the partitioned path on 3.3k vectors: two-level k-means (coarse, then fine cells),
    # and cells still too large split again.
    monkeypatch.setattr(dedup, "EXACT_MAX", 400)
    monkeypatch.setattr(dedup, "CELL_SIZE", 60)
    monkeypatch.setattr(dedup, "COARSE", 16)
    split = dedup.near_pairs(vectors, 0.9, 16)
    assert (split[2] >= 0.9).all() and (split[0] < split[1]).all()
    grouped = [dedup.components(len(vectors), i, j) >= 0 for i, j, _ in (exact, split)]
    assert grouped[0].sum() > 500
    assert (grouped[0] & grouped[1]).sum() / grouped[0].sum() >= 0.98


def test_keep_prefers_fewer_problems_then_more_words_then_smaller_id():
    groups = np.array([0, 0, 0, 1, 1, 2, 2, -1])
    penalty = dedup.quality_penalty(
        {
            "refusal": np.array([1, 0, 0, 0, 0, 0, 0, 0]),
            "short": np.array([0, 1, 0, 0, 0, 0, 0, 0]),
            "truncated": np.array([0, 0, 1, 0, 0, 0, 0, 0]),
        },
        8,
    )
    words = np.array([500, 3, 80, 10, 40, 7, 7, 99])
    ids = np.array([1, 2, 3, 9, 8, 5, 4, 6])
    keep = dedup.keep_members(groups, penalty, words, ids)
    # Group 0: the refusal (8) and the truncated answer (2) lose to the short one (1), words
    # notwithstanding. Group 1: more words. Group 2: a tie, the smaller id.
    assert keep.tolist() == [False, True, False, False, True, False, True, False]
