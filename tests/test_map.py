"""Embedding and maps on real data: Alpaca mixed with P3 templates, as GPT4All's data was."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import orjson
import pytest

import storage
from storage import embeddings as vector_rows
from tests.conftest import DATA, needs_data, query, run_console

# Slow (`make test-fast` leaves it out): every test embeds, fits UMAP or starts llama.cpp (~4 min).
pytestmark = pytest.mark.slow

P3_TEMPLATES = [
    "imdb_Reviewer_Enjoyment",
    "imdb_Sentiment_with_choices_",
    "rotten_tomatoes_Movie_Expressed_Sentiment",
    "quarel_choose_between",
    "social_i_qa_Generate_answer",
    "wiki_qa_Is_This_True_",
]


@pytest.fixture(scope="module")
def mixed_files(tmp_path_factory):
    """1,500 real Alpaca pairs and the real P3 templates (source = template), as GPT4All files."""
    folder = tmp_path_factory.mktemp("mixed")
    alpaca = [r for r in json.loads((DATA / "alpaca_5000.json").read_text()) if r["output"]][:1500]
    (folder / "alpaca.jsonl").write_bytes(
        b"".join(
            orjson.dumps(
                {
                    "prompt": r["instruction"] + (f"\n\n{r['input']}" if r["input"] else ""),
                    "response": r["output"],
                    "source": "alpaca",
                }
            )
            + b"\n"
            for r in alpaca
        )
    )
    lines = []
    for name in P3_TEMPLATES:
        for line in (DATA / "t0_train_50k_data_per_template" / f"{name}.jsonl").read_text().splitlines()[:120]:
            r = json.loads(line)
            lines.append(orjson.dumps({"prompt": r["prompt"], "response": r["completion"], "source": f"p3/{name}"}))
    (folder / "p3.jsonl").write_bytes(b"\n".join(lines) + b"\n")
    late = [r for r in json.loads((DATA / "alpaca_5000.json").read_text()) if r["output"]][4000:4100]
    (folder / "late.jsonl").write_bytes(
        b"".join(
            orjson.dumps({"prompt": r["instruction"], "response": r["output"], "source": "alpaca-late"}) + b"\n"
            for r in late
        )
    )
    return folder


@pytest.fixture(scope="module")
def mapped(mixed_files, tmp_path_factory):
    """A database with the mixed files ingested and a prompt map built."""
    db = tmp_path_factory.mktemp("db") / "map.duckdb"
    for name in ("alpaca.jsonl", "p3.jsonl"):
        assert run_console("--db", db, "ingest", mixed_files / name).returncode == 0
    result = run_console("--db", db, "map")
    assert result.returncode == 0, result.stderr
    return db, result.stdout


@needs_data
def test_p3_forms_clusters_of_its_own(mapped):
    db, out = mapped
    assert "points fitted" in out
    rows = query(db, "SELECT cluster, source FROM pairs_view WHERE cluster >= 0")
    by_cluster: dict[int, Counter] = {}
    for cluster, source in rows:
        by_cluster.setdefault(cluster, Counter())["p3" if source.startswith("p3/") else "alpaca"] += 1
    # Source purity: the share of points whose cluster's majority kind is their own kind.
    purity = sum(c.most_common(1)[0][1] for c in by_cluster.values()) / sum(
        sum(c.values()) for c in by_cluster.values()
    )
    assert purity >= 0.95, purity
    p3_points = sum(c["p3"] for c in by_cluster.values())
    in_p3_clusters = sum(c["p3"] for c in by_cluster.values() if c["p3"] > c["alpaca"])
    assert in_p3_clusters / p3_points >= 0.95
    # Most points belong to a cluster; noise is shown as -1 with the label "noise".
    total, noise = query(db, "SELECT count(*), count(*) FILTER (WHERE cluster = -1) FROM pairs_view")[0]
    assert noise / total < 0.3
    assert query(db, "SELECT DISTINCT topic FROM pairs_view WHERE cluster = -1") in ([], [("noise",)])


@needs_data
def test_topic_labels_are_words(mapped):
    db, _ = mapped
    clusters = json.loads(run_console("--db", db, "clusters", "--json").stdout)
    fine = [c for c in clusters if c["level"] == "fine" and c["id"] >= 0]
    coarse = [c for c in clusters if c["level"] == "coarse" and c["id"] >= 0]
    assert len(fine) >= 4 and 1 <= len(coarse) < len(fine)
    for c in fine:
        terms = c["label"].split(" · ")
        assert all(t.replace("'", "").replace("-", "").isalpha() or " " in t for t in terms), c["label"]
        assert c["parent"] in {k["id"] for k in coarse}
        assert c["size"] == sum(c["top_sources"].values()) or len(c["top_sources"]) == 5
    # The P3 review templates are named by what they ask ("sentiment expressed · movie");
    # Alpaca's questions about films may say "film" too, but not what a template asks.
    movie = [c for c in fine if any(w in c["label"] for w in ("sentiment", "review", "reviewer"))]
    assert movie and all(next(iter(c["top_sources"])).startswith("p3/") for c in movie)
    assert (
        sum(c["size"] for c in fine) + sum(c["size"] for c in clusters if c["level"] == "fine" and c["id"] == -1)
        == query(db, "SELECT count(*) FROM pairs")[0][0]
    )


@needs_data
def test_same_seed_same_coordinates(mapped, tmp_path):
    db, _ = mapped
    before = query(db, "SELECT id, x, y, cluster FROM pairs_view ORDER BY id")
    copy = tmp_path / "copy.duckdb"
    copy.write_bytes(db.read_bytes())
    (tmp_path / "copy.duckdb.vectors").symlink_to(f"{db}.vectors")
    assert run_console("--db", copy, "map", "--rebuild").returncode == 0
    assert query(copy, "SELECT id, x, y, cluster FROM pairs_view ORDER BY id") == before
    assert run_console("--db", copy, "map", "--rebuild", "--seed", "7").returncode == 0
    assert query(copy, "SELECT id, x, y FROM pairs_view ORDER BY id") != [r[:3] for r in before]


@needs_data
def test_new_pairs_are_placed_without_moving_old_ones(mapped, mixed_files, tmp_path):
    db, _ = mapped
    copy = tmp_path / "placed.duckdb"
    copy.write_bytes(db.read_bytes())
    (tmp_path / "placed.duckdb.vectors").symlink_to(f"{db}.vectors")
    (tmp_path / "placed.duckdb.maps").symlink_to(f"{db}.maps")
    before = query(copy, "SELECT id, x, y, cluster FROM pairs_view ORDER BY id")
    assert run_console("--db", copy, "ingest", mixed_files / "late.jsonl").returncode == 0
    out = run_console("--db", copy, "map")
    assert out.returncode == 0 and "100 placed without refitting" in out.stdout
    after = dict((r[0], r[1:]) for r in query(copy, "SELECT id, x, y, cluster FROM pairs_view"))
    assert all(after[i] == tuple(rest) for i, *rest in before)  # nothing moved
    late = query(copy, "SELECT x, y, cluster, topic FROM pairs_view WHERE source = 'alpaca-late'")
    assert len(late) == 100 and all(x is not None and y is not None for x, y, _, _ in late)
    # New Alpaca pairs land in Alpaca territory, not in the P3 blob.
    clusters = {c for _, _, c, _ in late if c >= 0}
    p3_clusters = {
        c
        for (c,) in query(
            copy, "SELECT cluster FROM pairs_view WHERE source LIKE 'p3/%' GROUP BY 1 HAVING count(*) > 20"
        )
    }
    assert len(clusters & p3_clusters) <= 1
    assert query(copy, "SELECT fitted, placed FROM maps")[0] == (len(before), 100)


@needs_data
def test_embed_resumes_after_kill_9(mixed_files, tmp_path):
    db = tmp_path / "embed.duckdb"
    assert run_console("--db", db, "ingest", mixed_files / "alpaca.jsonl").returncode == 0
    command = [
        str(os.path.join(os.path.dirname(sys.executable), "curator")),
        "--db",
        str(db),
        "embed",
        "--commit-every",
        "200",
    ]
    child = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    shards = tmp_path / "embed.duckdb.vectors" / "set-1"
    deadline = time.monotonic() + 120
    while child.poll() is None and time.monotonic() < deadline and not (shards / "shard-000003.npy").exists():
        time.sleep(0.05)  # shard 3 being written means shards 1 and 2 are committed
    assert child.poll() is None, "embedding finished before it could be killed"
    child.send_signal(signal.SIGKILL)
    child.wait()
    done = query(db, "SELECT count(*) FROM embeddings")[0][0]
    assert 400 <= done < 1500
    again = run_console("--db", db, "embed", "--commit-every", "200")
    assert again.returncode == 0, again.stderr
    assert f"embedded {1500 - done:,} pairs ({done:,} already had vectors)" in again.stdout
    assert query(db, "SELECT count(*), count(DISTINCT pair_id) FROM embeddings")[0] == (1500, 1500)


@needs_data
def test_model_by_local_path_gives_the_same_vectors(mixed_files, tmp_path):
    from curator import embedding

    db = tmp_path / "path.duckdb"
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"".join((mixed_files / "alpaca.jsonl").read_bytes().splitlines(keepends=True)[:50]))
    assert run_console("--db", db, "ingest", small).returncode == 0
    assert run_console("--db", db, "embed").returncode == 0
    assert run_console("--db", db, "embed", "--model", str(embedding.bundled_model_path())).returncode == 0
    con = storage.connect_read_only(db)
    try:
        (_, default), (_, by_path) = (vector_rows.load_vectors(con, s) for s in (1, 2))
        models = [m for (m,) in con.execute("SELECT model FROM embedding_sets ORDER BY id").fetchall()]
    finally:
        con.close()
    assert models == ["all-MiniLM-L6-v2", str(embedding.bundled_model_path())]
    assert default.shape == (50, 384) and np.allclose(default, by_path, atol=1e-5)
    assert np.allclose(np.linalg.norm(default, axis=1), 1, atol=1e-5)


@needs_data
def test_onnx_path_gives_sentence_transformers_vectors():
    from curator import embedding

    prompts = [r["instruction"] for r in json.loads((DATA / "alpaca_5000.json").read_text())[:200]]
    prompts.append("word " * 400)  # longer than the model's 256 tokens: truncated the same way
    onnx = embedding.load_encoder()
    assert onnx.backend == "onnx"
    torch_path = embedding.TorchEncoder(
        onnx.name, embedding._sentence_transformer(str(embedding.bundled_model_path()), "cpu")
    )
    assert np.abs(onnx.encode(prompts) - torch_path.encode(prompts)).max() < 1e-5


@pytest.fixture(scope="module")
def llm():
    """The bundled SmolLM2 behind llama.cpp's OpenAI-compatible server on 127.0.0.1."""
    from curator import llm_server

    with llm_server.start(n_parallel=4, context=1024) as server:
        yield server


@pytest.fixture(scope="module")
def small_map(mixed_files, tmp_path_factory):
    """A few large clusters (300 Alpaca pairs, 2 P3 templates): each one is a request to the model."""
    folder = tmp_path_factory.mktemp("small")
    alpaca = (mixed_files / "alpaca.jsonl").read_text().splitlines()[:300]
    p3 = [
        line
        for line in (mixed_files / "p3.jsonl").read_text().splitlines()
        if any(f'"p3/{name}"' in line for name in P3_TEMPLATES[:2])
    ]
    (folder / "small.jsonl").write_text("\n".join(alpaca + p3) + "\n")
    db = folder / "small.duckdb"
    assert run_console("--db", db, "ingest", folder / "small.jsonl").returncode == 0
    result = run_console("--db", db, "map", "--min-cluster-size", "25")
    assert result.returncode == 0, result.stderr
    return db


@needs_data
def test_label_model_names_clusters_through_a_real_server(small_map, llm, tmp_path):
    db = small_map
    copy = tmp_path / "labelled.duckdb"
    copy.write_bytes(db.read_bytes())
    (tmp_path / "labelled.duckdb.vectors").symlink_to(f"{db}.vectors")
    terms = {
        c["id"]: c["label"]
        for c in json.loads(run_console("--db", db, "clusters", "--json").stdout)
        if c["level"] == "fine" and c["id"] >= 0
    }
    result = run_console(
        "--db",
        copy,
        "map",
        "--rebuild",
        "--min-cluster-size",
        "25",
        "--label-model",
        llm.model,
        "--base-url",
        llm.base_url,
    )
    assert result.returncode == 0, result.stderr
    clusters = json.loads(run_console("--db", copy, "clusters", "--json").stdout)
    named = {c["id"]: c["label"] for c in clusters if c["level"] == "fine" and c["id"] >= 0}
    assert named.keys() == terms.keys()  # same seed, same clusters: only the names change
    changed = [i for i in named if named[i] != terms[i]]
    assert len(changed) >= len(named) * 0.8, (named, terms)
    assert all(0 < len(named[i]) <= 49 and "\n" not in named[i] for i in changed)
    (params,) = query(copy, "SELECT params FROM maps")[0]
    assert json.loads(params)["label_model"] == llm.model
    # Coarse labels stay term labels: the model names only the fine clusters.
    coarse_terms = [
        c for c in json.loads(run_console("--db", db, "clusters", "--json").stdout) if c["level"] == "coarse"
    ]
    assert [c for c in clusters if c["level"] == "coarse"] == coarse_terms


@needs_data
def test_label_model_that_never_answers_fails_the_job_with_its_error(small_map, tmp_path):
    db = small_map
    copy = tmp_path / "unreachable.duckdb"
    copy.write_bytes(db.read_bytes())
    (tmp_path / "unreachable.duckdb.vectors").symlink_to(f"{db}.vectors")
    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    result = run_console(
        "--db",
        copy,
        "map",
        "--rebuild",
        "--min-cluster-size",
        "25",
        "--label-model",
        "any",
        "--base-url",
        f"http://127.0.0.1:{port}/v1",
    )
    assert result.returncode != 0
    assert "--label-model any: every request failed" in result.stderr and "Connection" in result.stderr
    # The failed rebuild left the earlier map in place.
    assert (
        query(copy, "SELECT count(*) FROM pairs_view WHERE cluster IS NOT NULL")[0][0]
        == query(db, "SELECT count(*) FROM pairs_view WHERE cluster IS NOT NULL")[0][0]
    )


@needs_data
def test_a_crash_between_a_staged_shard_and_its_commit_loses_and_doubles_nothing(mixed_files, tmp_path):
    """The shard file is written before the commit that indexes it: a crash in between leaves
    an orphan file, which the rerun overwrites (same shard number) with the same pairs."""
    from jobs.embed import embed

    db = tmp_path / "staged.duckdb"
    small = tmp_path / "small.jsonl"
    small.write_bytes(b"".join((mixed_files / "alpaca.jsonl").read_bytes().splitlines(keepends=True)[:300]))
    assert run_console("--db", db, "ingest", small).returncode == 0

    class Crash(Exception):
        pass

    def crash_in_second_commit(done, total, message):
        if done > 100:  # called inside the second batch's transaction, its shard already on disk
            raise Crash()

    with pytest.raises(Crash):
        embed(storage.Database(db), commit_every=100, progress=crash_in_second_commit)
    shards = sorted(p.name for p in (tmp_path / "staged.duckdb.vectors" / "set-1").glob("shard-*.npy"))
    assert shards == ["shard-000001.npy", "shard-000002.npy"]  # the second staged, not committed
    assert query(db, "SELECT count(*) FROM embeddings")[0][0] == 100
    assert query(db, "SELECT status FROM jobs WHERE kind = 'embed'")[0][0] == "failed"

    again = embed(storage.Database(db), commit_every=100)
    assert (again.embedded, again.already) == (200, 100)
    assert query(db, "SELECT count(*), count(DISTINCT pair_id), max(shard) FROM embeddings")[0] == (300, 300, 3)
    fresh = tmp_path / "fresh.duckdb"
    assert run_console("--db", fresh, "ingest", small).returncode == 0
    embed(storage.Database(fresh))
    with storage.Database(db).reading() as con:
        ids, resumed = vector_rows.load_vectors(con, 1)
    with storage.Database(fresh).reading() as con:
        fresh_ids, whole = vector_rows.load_vectors(con, 1)
    assert np.array_equal(ids, fresh_ids) and np.allclose(resumed, whole, atol=1e-5)
