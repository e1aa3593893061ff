"""Curation operations on real data: every selector, tag/untag, soft delete/restore, undo, the
log, the --where guard, and replay onto a fresh ingest of the same files."""

from __future__ import annotations

import json

import numpy as np
import pytest
from matplotlib.path import Path as MplPath

import storage
from curator.selection import Selector, parse_id_list, points_in_polygon, top_k
from jobs import operations
from tests.conftest import DATA, Curator, needs_data, query
from tests.curation_data import CODE, IDENTITY, copy_to, mapped_template, source_files


@pytest.fixture(scope="module")
def template(tmp_path_factory):
    if not DATA.exists():
        pytest.skip("needs ../shared/data")
    return mapped_template(tmp_path_factory)


@pytest.fixture
def mapped(template, db):
    """A private copy of the mapped database at the path the `curator` fixture uses."""
    return copy_to(template, db)


def kept(db) -> set[int]:
    return {r[0] for r in query(db, "SELECT id FROM pairs WHERE deleted_op IS NULL")}


def count(db, sql: str, params: list | None = None) -> int:
    return query(db, sql, params)[0][0]


# --- pure parts -----------------------------------------------------------------------------------


def test_selector_takes_exactly_one_kind():
    assert Selector(source="a").kind == "source"
    for bad in (
        {},
        {"source": "a", "tag": "b"},
        {"similar_to": "hi"},
        {"source": "a", "top": 3},
        {"source": "a", "map": "prompt"},
        {"polygon": [[0, 0], [1, 1]]},
        {"cluster": "3"},
        {"where": "  "},
        {"polygon": [[0, 0], [1, "x"], [2, 2]]},
        {"tag": 3},
        {"lasso": []},
    ):
        with pytest.raises(ValueError):
            Selector.from_dict(bad)
    selector = Selector.from_dict({"ids": list(range(100, 0, -1))})
    assert selector.ids[0] == 1 and len(selector.ids) == 100
    assert selector.describe()["ids"]["count"] == 100  # long lists are logged as count + digest
    assert Selector.from_dict({"cluster": 4, "map": "prompt"}).describe() == {
        "cluster": 4,
        "map": "prompt",
        "level": "fine",
    }


def test_parse_id_list_reads_lines_and_json():
    assert parse_id_list("[3, 1, 2]").tolist() == [3, 1, 2]
    assert parse_id_list("5\n\n  7  # a comment\n-9\n").tolist() == [5, 7, -9]
    with pytest.raises(ValueError, match="line 2"):
        parse_id_list("5\nfive\n")
    with pytest.raises(ValueError):
        parse_id_list('[1, "2"]')


def test_points_in_polygon_handles_concave_lassos():
    # A "U": the notch between the arms is outside although inside the bounding box.
    u_shape = [(0, 0), (3, 0), (3, 3), (2, 3), (2, 1), (1, 1), (1, 3), (0, 3)]
    x = np.array([0.5, 1.5, 2.5, 1.5, 4.0, 1.5, -0.1])
    y = np.array([2.5, 2.5, 2.5, 0.5, 1.0, 3.5, 1.0])
    assert points_in_polygon(x, y, u_shape).tolist() == [True, False, True, True, False, False, False]
    # Against matplotlib's Path on a random concave 60-gon and 200k points, float32 like map_points.
    rng = np.random.default_rng(1)
    angles = np.sort(rng.uniform(0, 2 * np.pi, 60))
    radii = rng.uniform(1, 5, 60)
    lasso = np.column_stack([radii * np.cos(angles), radii * np.sin(angles)])
    points = rng.uniform(-6, 6, size=(200_000, 2)).astype(np.float32)
    inside = points_in_polygon(points[:, 0], points[:, 1], lasso.tolist())
    expected = MplPath(lasso).contains_points(points.astype(np.float64))
    assert 0.05 < inside.mean() < 0.6
    assert (inside != expected).sum() == 0


def test_top_k_is_best_first():
    vectors = np.eye(4, dtype=np.float32)[[0, 1, 2, 3, 0]]
    query_vector = np.array([0.9, 0.1, 0.4, 0], dtype=np.float32)
    best = top_k(vectors, query_vector, 3)
    assert set(best[:2]) == {0, 4} and best[2] == 2


# --- selectors on a real mapped database -------------------------------------------------------


@needs_data
@pytest.mark.slow
def test_where_selects_and_tags_show_in_pairs_view(mapped, curator):
    identity = curator.json("tag", "identity", "--where", f"source = '{IDENTITY}'")
    assert identity["count"] == 500 and identity["selector"] == {"where": f"source = '{IDENTITY}'"}
    even = curator.json("tag", "even", "--where", "id % 2 = 0")
    assert even["count"] == count(mapped, "SELECT count(*) FROM pairs WHERE id % 2 = 0")
    assert (
        count(
            mapped,
            f"SELECT count(*) FROM pairs_view WHERE source = '{IDENTITY}' AND id % 2 = 0 "
            "AND tags = ['even', 'identity']",
        )
        > 100
    )
    assert count(mapped, f"SELECT count(*) FROM pairs_view WHERE id % 2 = 1 AND source = '{CODE}' AND tags = []") > 400
    # Tagging again changes nothing; --tag selects by tag; untag, then undo puts the rows back.
    assert curator.json("tag", "identity", "--source", IDENTITY)["count"] == 0
    assert curator.json("delete", "--tag", "identity", "--dry-run")["would_change"] == 500
    before = query(mapped, "SELECT pair_id, tag, op_id FROM tags ORDER BY ALL")
    removed = curator.json("untag", "identity", "--where", "id % 2 = 0")
    assert removed["count"] == count(mapped, f"SELECT count(*) FROM pairs WHERE source = '{IDENTITY}' AND id % 2 = 0")
    still = count(mapped, "SELECT count(*) FROM pairs_view WHERE list_contains(tags, 'identity')")
    assert still == 500 - removed["count"]
    curator("undo")
    assert query(mapped, "SELECT pair_id, tag, op_id FROM tags ORDER BY ALL") == before


@needs_data
@pytest.mark.slow
def test_where_guard_rejects_writes_and_chained_statements(mapped, curator):
    pairs_before = count(mapped, "SELECT count(*) FROM pairs")
    for bad in (
        "true; DELETE FROM pairs",
        "1=1; DROP TABLE pairs",
        "true) UNION SELECT 1 --",
        "id IN (DELETE FROM pairs RETURNING id)",
        "nextval('operation_id_seq') > 0",
        "true ORDER BY id LIMIT 1",
        "source, id",
        "no_such_column",
        "id IN (SELECT id FROM read_csv('/etc/passwd'))",
    ):
        result = curator("delete", "--where", bad, ok=False)
        assert result.exit_code != 0 and "Traceback" not in result.output, bad
        assert "--where" in result.output, (bad, result.output)
    assert count(mapped, "SELECT count(*) FROM pairs") == pairs_before
    assert count(mapped, "SELECT count(*) FROM operations") == 0
    assert kept(mapped) == {r[0] for r in query(mapped, "SELECT id FROM pairs")}
    # A semicolon inside a string and a trailing comment are fine.
    ok = curator.json("delete", "--where", "response LIKE '%;%' -- code with semicolons", "--dry-run")
    assert ok["selected"] == count(mapped, "SELECT count(*) FROM pairs WHERE response LIKE '%;%'") > 50


@needs_data
@pytest.mark.slow
def test_cluster_selector_fine_and_coarse(mapped, curator):
    clusters = curator.json("clusters")
    fine = max((c for c in clusters if c["level"] == "fine" and c["id"] != -1), key=lambda c: c["size"])
    deleted = curator.json("delete", "--cluster", fine["id"], "--reason", "biggest blob")
    assert deleted["count"] == fine["size"] and deleted["reason"] == "biggest blob"
    assert {r[0] for r in query(mapped, "SELECT id FROM pairs_view WHERE deleted")} == {
        r[0] for r in query(mapped, "SELECT pair_id FROM map_points WHERE cluster = ?", [fine["id"]])
    }
    coarse = max((c for c in clusters if c["level"] == "coarse" and c["id"] != -1), key=lambda c: c["size"])
    tagged = curator.json("tag", "coarse", "--cluster", coarse["id"], "--level", "coarse", "--map", "prompt")
    assert (
        tagged["count"]
        == coarse["size"]
        == sum(c["size"] for c in clusters if c["level"] == "fine" and c["parent"] == coarse["id"])
    )
    result = curator("delete", "--cluster", 9999, ok=False)
    assert "no fine cluster 9999" in result.output
    assert "no map 'nope'" in curator("delete", "--cluster", 1, "--map", "nope", ok=False).output


@needs_data
@pytest.mark.slow
def test_polygon_selector_matches_the_lasso_exactly(mapped, curator):
    rows = query(mapped, "SELECT pair_id, x, y FROM map_points")
    ids, xy = np.array([r[0] for r in rows], dtype=np.int64), np.array([r[1:] for r in rows], dtype=np.float32)
    centre, spread = np.median(xy, axis=0), xy.std(axis=0)
    angles = np.linspace(0, 2 * np.pi, 40, endpoint=False)
    radii = 1 + 0.4 * np.sin(3 * angles)  # three lobes: concave
    lasso = np.column_stack(
        [centre[0] + spread[0] * radii * np.cos(angles), centre[1] + spread[1] * radii * np.sin(angles)]
    )
    expected = set(ids[MplPath(lasso).contains_points(xy.astype(np.float64))].tolist())
    assert 100 < len(expected) < len(ids)
    # The web app's selection equals the command's, and the delete changes exactly those pairs.
    assert set(operations.select(mapped, {"polygon": lasso.tolist(), "map": "prompt"}).tolist()) == expected
    deleted = curator.json("delete", "--polygon", json.dumps(lasso.tolist()), "--reason", "lasso")
    assert deleted["count"] == len(expected)
    assert {r[0] for r in query(mapped, "SELECT id FROM pairs WHERE deleted_op IS NOT NULL")} == expected
    # A second lasso over the same place deletes nothing more; a bad polygon is one clear error.
    assert curator.json("delete", "--polygon", json.dumps(lasso.tolist()))["count"] == 0
    assert "polygon" in curator("delete", "--polygon", "[[0, 0], [1, 1]]", ok=False).output
    assert "not JSON" in curator("delete", "--polygon", "[[0, 0], [1", ok=False).output


@needs_data
@pytest.mark.slow
def test_similar_to_finds_the_identity_questions(mapped, curator):
    tagged = curator.json("tag", "about-me", "--similar-to", "Are you trained by OpenAI?", "--top", 25)
    assert tagged["count"] == 25
    sources = dict(
        query(mapped, "SELECT source, count(*) FROM pairs_view WHERE list_contains(tags, 'about-me') GROUP BY 1")
    )
    assert sources.get(IDENTITY, 0) >= 23, sources
    best = operations.select(mapped, {"similar_to": "Are you trained by OpenAI?", "top": 3})
    prompts = [r[0] for r in query(mapped, "SELECT prompt FROM pairs WHERE id = ?", [int(best[0])])]
    assert prompts == ["Are you trained by OpenAI?"]
    assert "--top" in curator("tag", "x", "--similar-to", "hello", ok=False).output


@needs_data
@pytest.mark.slow
def test_source_and_ids_selectors(mapped, curator, tmp_path):
    assert curator.json("delete", "--source", IDENTITY, "--dry-run")["would_change"] == 500
    ids = [r[0] for r in query(mapped, "SELECT id FROM pairs WHERE source = ? ORDER BY id LIMIT 30", [CODE])]
    lines = tmp_path / "ids.txt"
    lines.write_text("\n".join(map(str, ids[:20])) + "\n12345  # no such pair\n")
    as_json = tmp_path / "ids.json"
    as_json.write_text(json.dumps(ids[10:]))
    assert curator.json("delete", "--ids", lines)["count"] == 20
    assert curator.json("delete", "--ids", as_json)["count"] == 10  # ids[10:20] were deleted already
    assert {r[0] for r in query(mapped, "SELECT id FROM pairs WHERE deleted_op IS NOT NULL")} == set(ids)
    assert "exactly one selector" in curator("delete", "--source", CODE, "--tag", "x", ok=False).output
    assert "exactly one selector" in curator("delete", ok=False).output


# --- delete, restore, undo, log ------------------------------------------------------------------


@needs_data
@pytest.mark.slow
def test_delete_restore_undo_round_trip_and_log(mapped, curator):
    total = count(mapped, "SELECT count(*) FROM pairs")
    first = curator.json("delete", "--source", IDENTITY, "--reason", "identity blob")
    assert first["count"] == 500
    tenth = count(mapped, f"SELECT count(*) FROM pairs WHERE source = '{CODE}' AND id % 10 = 0")
    second = curator.json("delete", "--where", f"source = '{IDENTITY}' OR id % 10 = 0")
    assert second["count"] == tenth  # only pairs not deleted yet count
    assert curator.json("stats")["deleted"] == 500 + tenth
    state_before_restore = query(mapped, "SELECT id, deleted_op FROM pairs ORDER BY id")
    restored = curator.json("restore", "--where", "id % 10 = 0")
    back = count(mapped, f"SELECT count(*) FROM pairs WHERE source = '{IDENTITY}' AND id % 10 = 0")
    assert restored["count"] == tenth + back
    assert (
        count(
            mapped,
            "SELECT count(*) FROM operation_pairs WHERE op_id = ? AND previous = ?",
            [restored["id"], first["id"]],
        )
        == back
    )

    # The first delete shares pairs with the standing restore: undo is refused until it goes.
    refused = curator("undo", first["id"], ok=False)
    assert f"later operation(s) {restored['id']}" in refused.output
    undo_restore = curator.json("undo")  # default: the latest not undone
    assert undo_restore["undoes"] == restored["id"] and undo_restore["count"] == restored["count"]
    assert query(mapped, "SELECT id, deleted_op FROM pairs ORDER BY id") == state_before_restore
    assert curator.json("undo", first["id"])["count"] == 500  # the second delete touched none of its pairs
    assert count(mapped, "SELECT count(*) FROM pairs_view WHERE deleted") == tenth
    curator("undo", second["id"])
    assert len(kept(mapped)) == total
    assert "nothing to undo" in curator("undo", ok=False).output
    assert "already undone" in curator("undo", first["id"], ok=False).output
    assert "itself an undo" in curator("undo", undo_restore["id"], ok=False).output

    log = curator.json("log")
    assert [(o["kind"], o["count"], o["undoes"], o["undone_by"] is not None) for o in log] == [
        ("delete", 500, None, True),
        ("delete", tenth, None, True),
        ("restore", tenth + back, None, True),
        ("undo", tenth + back, restored["id"], False),
        ("undo", 500, first["id"], False),
        ("undo", tenth, second["id"], False),
    ]
    assert log[0]["reason"] == "identity blob" and log[0]["selector"] == {"source": IDENTITY}
    assert {"id", "time", "kind", "selector", "tag", "reason", "count", "undoes", "undone_by"} <= set(log[0])
    text = curator("log").output
    assert "identity blob" in text and f"undone by {log[3]['id']}" in text


@needs_data
@pytest.mark.slow
def test_dry_run_changes_nothing(mapped, curator):
    clusters = [c for c in curator.json("clusters") if c["level"] == "fine" and c["id"] != -1]
    chosen = clusters[0]
    preview = curator.json("delete", "--cluster", chosen["id"], "--dry-run")
    assert preview["selected"] == preview["would_change"] == chosen["size"]
    assert sum(s["pairs"] for s in preview["by_source"]) == chosen["size"]
    assert preview["by_cluster"] == [{"cluster": chosen["id"], "topic": chosen["label"], "pairs": chosen["size"]}]
    assert "dry run" in curator("delete", "--cluster", chosen["id"], "--dry-run").output
    assert count(mapped, "SELECT count(*) FROM operations") == 0
    assert count(mapped, "SELECT count(*) FROM pairs WHERE deleted_op IS NOT NULL") == 0


# --- replay -------------------------------------------------------------------------------------


@needs_data
@pytest.mark.slow
def test_delete_undo_replay_gives_the_same_kept_set(mapped, curator, tmp_path, tmp_path_factory):
    curator("delete", "--source", IDENTITY, "--reason", "identity")
    curator("tag", "third", "--where", "id % 3 = 0")
    short = curator.json("delete", "--where", "length(prompt) < 40", "--reason", "short prompts")
    curator("undo", short["id"])
    code_cluster = max(
        (c for c in curator.json("clusters") if c["level"] == "fine" and c["id"] != -1 and CODE in c["top_sources"]),
        key=lambda c: c["size"],
    )
    curator("delete", "--cluster", code_cluster["id"])
    curator("restore", "--where", "id % 7 = 0")
    curator("untag", "third", "--where", "id % 2 = 0")
    exported = tmp_path / "log.jsonl"
    assert "wrote 7 operation(s)" in curator("log", "--export", exported).output
    lines = [json.loads(line) for line in exported.read_text().splitlines()]
    assert [len(line["pair_ids"]) for line in lines] == [line["count"] for line in lines]

    fresh = tmp_path / "fresh.duckdb"
    other = Curator(fresh)
    files = source_files(tmp_path_factory)
    other("ingest", *files)
    steps = other.json("replay", exported)
    assert [s["logged"] for s in steps] == [s["changed"] for s in steps]
    assert kept(fresh) == kept(mapped) and 0 < len(kept(fresh)) < count(mapped, "SELECT count(*) FROM pairs")
    assert query(fresh, "SELECT pair_id, tag FROM tags ORDER BY ALL") == query(
        mapped, "SELECT pair_id, tag FROM tags ORDER BY ALL"
    )
    assert [(o["kind"], o["count"]) for o in other.json("log")] == [
        (o["kind"], o["count"]) for o in curator.json("log")
    ]

    # A database that lacks some of the pairs refuses the whole log and changes nothing.
    partial = tmp_path / "partial.duckdb"
    Curator(partial)("ingest", files[0])
    refused = Curator(partial)("replay", exported, ok=False)
    assert "not in this database" in refused.output
    assert count(partial, "SELECT count(*) FROM operations") == 0


def test_one_breakdown_whether_counted_on_the_map_frame_or_in_the_database(mapped, curator):
    """The selection panel counts a selection on the cached map frame when it can, else in the
    database: both are curator.selection.breakdown over the same columns, so they agree
    (noise named 'noise', the chosen map's topics)."""
    from curator.selection import breakdown
    from storage import browse
    from storage import maps as map_rows

    curator("signals")
    curator("delete", "--where", "source = 'code_alpaca'", "--reason", "breakdown test")
    with storage.Database(mapped).reading() as con:
        chosen_map = map_rows.default(con)
        frame = browse.map_points(con, chosen_map.id)
        deleted, _ = browse.marks(con)
        frame["deleted"] = np.isin(frame["id"].to_numpy(), deleted)
        rng = np.random.default_rng(0)
        mask = rng.random(len(frame)) < 0.4
        ids = frame["id"].to_numpy()[mask]
        from_database = breakdown(browse.breakdown_columns(con, ids, chosen_map.id), browse.signal_columns())
    from_frame = breakdown(frame, browse.signal_columns(), mask)
    assert from_frame == from_database
    topics = dict(from_frame["topic"])
    assert sum(dict(from_frame["source"]).values()) == len(ids)
    assert "noise" in topics or (frame["cluster"].to_numpy()[mask] >= 0).all()
    signals = dict(from_frame["signal"])
    assert signals["deleted"] == count(
        mapped, "SELECT count(*) FROM pairs WHERE deleted_op IS NOT NULL AND id IN (SELECT unnest(?))", [ids.tolist()]
    )
    # A pair the map does not hold yet is counted as such, not under some topic.
    late = mapped.with_name("late.jsonl")
    late.write_text('{"prompt": "A pair ingested after the map", "response": "Not placed yet."}\n')
    curator("ingest", late)
    with storage.Database(mapped).reading() as con:
        (outside,) = con.execute("SELECT id FROM pairs WHERE prompt = 'A pair ingested after the map'").fetchone()
        columns = browse.breakdown_columns(con, np.array([ids[0], outside]), chosen_map.id)
    assert dict(breakdown(columns, browse.signal_columns())["topic"])[browse.NOT_ON_MAP] == 1
