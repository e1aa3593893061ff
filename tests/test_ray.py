"""--ray on a real local Ray instance (127.0.0.1, this machine's CPUs): `curator embed` gives the
local job's vectors, resumes after kill -9 of its driver and loses nothing to a killed worker;
placing points and the duplicate search on the workers give the local results exactly, as do
`curator map --ray` and `curator duplicates --ray`.

Needs the `ray` extra (`pip install -e .[ray]`); the module is skipped without it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from tests.conftest import DATA, Curator, needs_data, query

ray = pytest.importorskip("ray", reason="needs the ray extra: pip install -e .[ray]")
pytestmark = [needs_data, pytest.mark.slow]  # a local Ray cluster, kills and full maps: ~3 min


def _alpaca(folder: Path, n: int) -> Path:
    path = folder / f"alpaca_{n}.json"
    path.write_text(json.dumps(json.loads((DATA / "alpaca_5000.json").read_text())[:n]))
    return path


def _vectors(db: Path) -> tuple[np.ndarray, np.ndarray]:
    import storage
    from storage import embeddings as vector_rows

    con = storage.connect_read_only(db)
    try:
        return vector_rows.load_vectors(con, 1)
    finally:
        con.close()


@pytest.fixture(scope="module")
def local_vectors(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ray-local")
    curator = Curator(folder / "local.duckdb")
    curator("ingest", _alpaca(folder, 400))
    curator("embed")
    return _vectors(curator.db)


@pytest.fixture(scope="module")
def cluster():
    """A local Ray instance (127.0.0.1, this machine's CPUs) with 2 workers, for in-process tests."""
    from jobs.ray_pool import RayCluster

    pool = RayCluster(workers=2)
    yield pool
    pool.close()
    ray.shutdown()


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    assert np.array_equal(a[0], b[0])
    assert (np.sum(a[1] * b[1], axis=1) >= 0.9999).all()


def test_a_killed_driver_resumes_with_the_local_jobs_vectors(tmp_path, local_vectors):
    db = tmp_path / "ray.duckdb"
    Curator(db)("ingest", _alpaca(tmp_path, 400))
    shards = Path(f"{db}.vectors") / "set-1"
    command = [
        str(Path(sys.executable).with_name("curator")),
        "--db",
        str(db),
        "embed",
        "--ray",
        "--workers",
        "2",
        "--commit-every",
        "40",
    ]
    # Its own session: the kill takes the driver and the local Ray instance it started.
    child = subprocess.Popen(command, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 240
    while not (shards.exists() and len(list(shards.glob("shard-*.npy"))) >= 2) and time.monotonic() < deadline:
        assert child.poll() is None, "the job ended before it could be killed"
        time.sleep(0.05)
    os.killpg(child.pid, signal.SIGKILL)
    child.wait()
    done = query(db, "SELECT count(*), count(DISTINCT pair_id) FROM embeddings")[0]
    assert 0 < done[0] == done[1] < 400, done
    result = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert f"embedded {400 - done[0]:,} pairs ({done[0]:,} already had vectors)" in result.stdout
    assert query(db, "SELECT count(*), count(DISTINCT pair_id) FROM embeddings")[0] == (400, 400)
    _same(_vectors(db), local_vectors)


def test_a_killed_worker_is_restarted_and_nothing_is_lost(cluster):
    from curator import embedding

    prompts = [r["instruction"] for r in json.loads((DATA / "alpaca_5000.json").read_text())[:1600]]
    victim = cluster.worker_pids()[0]
    killer = threading.Timer(1.0, os.kill, (victim, signal.SIGKILL))
    killer.start()
    vectors = cluster.encoder().encode(prompts)
    killer.join()
    assert victim not in cluster.worker_pids()  # the actor came back in a new process
    expected = embedding.load_encoder().encode(prompts)
    assert vectors.shape == expected.shape
    assert (np.sum(vectors * expected, axis=1) >= 0.9999).all()


@pytest.fixture(scope="module")
def fast_vectors() -> np.ndarray:
    """Real prompts, each also with a near-copy (case and a word changed), as unit fast vectors."""
    from curator import embedding

    prompts = [r["instruction"] for r in json.loads((DATA / "alpaca_5000.json").read_text())[:1500]]
    texts = prompts + [p.lower().replace(" the ", " a ", 1) for p in prompts[:500]]
    return embedding.load_encoder(fast=True).encode(texts)


def test_workers_the_cluster_cannot_start_are_a_clear_error(cluster, monkeypatch):
    from jobs import ray_pool

    monkeypatch.setattr(ray_pool, "START_TIMEOUT", 5)
    with pytest.raises(
        ValueError,
        match=r"only 0 of 2 Ray workers .* started in 5 s: the cluster has 0 of \d+ CPUs "
        r"free; ask for fewer --workers",
    ):
        ray_pool.RayCluster(workers=2)  # the module's cluster holds every CPU
    assert len(cluster.worker_pids()) == 2  # and keeps working


def test_points_placed_on_the_workers_land_where_local_placing_puts_them(cluster, fast_vectors, monkeypatch):
    from curator import projection

    fitted, _ = projection.fit_projection(fast_vectors[:300], projection.MapParams())
    monkeypatch.setattr(projection, "PLACE_CHUNK", 150)  # 12 chunks over the 2 workers
    rest = fast_vectors[300:]
    local = projection.place(fitted, rest)
    stages = []
    distributed = projection.place(fitted, rest, stages.append, mapper=cluster.map)
    assert np.array_equal(distributed, local)
    assert stages[-1] == f"placing {len(rest):,}/{len(rest):,}" and len(stages) == 1 + -(-len(rest) // 150)


def test_the_duplicate_search_on_the_workers_finds_the_local_edges(cluster, fast_vectors, monkeypatch):
    from curator import duplicates

    monkeypatch.setattr(duplicates, "EXACT_MAX", 300)  # k-means cells on this small set
    monkeypatch.setattr(duplicates, "SEARCH_BATCH", 400)  # and several batches of them
    local = duplicates.near_pairs(fast_vectors, 0.9, 16)
    distributed = duplicates.near_pairs(fast_vectors, 0.9, 16, mapper=cluster.map)
    for a, b in zip(local, distributed):
        assert np.array_equal(a, b)
    near_copies = set(zip(local[0].tolist(), local[1].tolist())) & {(i, 1500 + i) for i in range(500)}
    assert len(near_copies) > 400  # most planted near-copies found (the cells split a few)


def test_map_and_duplicates_with_ray_equal_the_local_commands(tmp_path):
    """`curator map --ray` (embedding and placing on the cluster) and `curator duplicates --ray`
    write the local commands' coordinates, clusters and duplicate sets. The --ray commands run
    as child processes, each starting its own local Ray instance."""
    source = _alpaca(tmp_path, 400)
    # 40 prompts again with answers of their own (conflicts), 20 pairs again in upper case
    # (exact duplicate sets).
    records = json.loads(source.read_text())
    copies = tmp_path / "copies.jsonl"
    copies.write_text(
        "".join(
            json.dumps(row) + "\n"
            for row in [
                *({"prompt": r["instruction"], "response": f"Another answer {i}."} for i, r in enumerate(records[:40])),
                *(
                    {"prompt": r["instruction"].upper(), "response": r["output"].upper()}
                    for r in records[100:120]
                    if not r["input"]
                ),
            ]
        )
    )
    results = {}
    for name, extra in (("local", ()), ("ray", ("--ray", "--workers", "2"))):
        curator = Curator(tmp_path / f"{name}.duckdb")
        curator("ingest", source)
        curator("ingest", copies)
        for command in (["map", "--fit-sample", "200"], ["duplicates"]):
            if extra:
                result = subprocess.run(
                    [str(Path(sys.executable).with_name("curator")), "--db", str(curator.db), *command, *extra],
                    capture_output=True,
                    text=True,
                    timeout=600,
                )
                assert result.returncode == 0, result.stderr
            else:
                curator(*command)
        results[name] = (
            query(curator.db, "SELECT pair_id, x, y, cluster, placed FROM map_points ORDER BY pair_id"),
            query(curator.db, "SELECT pair_id, dup_group, dup_keep, conflict FROM duplicates ORDER BY pair_id"),
        )
    points, sets = results["ray"]
    assert points == results["local"][0] and len(points) == query(curator.db, "SELECT count(*) FROM pairs")[0][0]
    assert sets == results["local"][1]
    assert sum(conflict for *_, conflict in sets) >= 40 and sum(group is not None for _, group, *_ in sets) >= 20
