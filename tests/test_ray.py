"""`curator embed --ray` on a real local Ray instance (127.0.0.1, 2 CPUs): the same vectors as
the local job, a driver killed with kill -9 resumed, a worker killed mid-encode retried.

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
pytestmark = needs_data


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


def _same(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray]) -> None:
    assert np.array_equal(a[0], b[0])
    assert (np.sum(a[1] * b[1], axis=1) >= 0.9999).all()


def test_a_killed_driver_resumes_with_the_local_jobs_vectors(tmp_path, local_vectors):
    db = tmp_path / "ray.duckdb"
    Curator(db)("ingest", _alpaca(tmp_path, 400))
    shards = Path(f"{db}.vectors") / "set-1"
    command = [str(Path(sys.executable).with_name("curator")), "--db", str(db), "embed", "--ray", "--workers", "2",
               "--commit-every", "40"]
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


def test_a_killed_worker_is_restarted_and_nothing_is_lost():
    from curator import embedding
    from jobs.ray_pool import RayEncoder

    prompts = [r["instruction"] for r in json.loads((DATA / "alpaca_5000.json").read_text())[:1600]]
    encoder = RayEncoder(workers=2)
    try:
        victim = encoder.worker_pids()[0]
        killer = threading.Timer(1.0, os.kill, (victim, signal.SIGKILL))
        killer.start()
        vectors = encoder.encode(prompts)
        killer.join()
        assert victim not in encoder.worker_pids()  # the actor came back in a new process
    finally:
        ray.shutdown()
    expected = embedding.load_encoder().encode(prompts)
    assert vectors.shape == expected.shape
    assert (np.sum(vectors * expected, axis=1) >= 0.9999).all()
