"""The app stays usable while a job runs (issue 25): a real `curator embed` started from the CLI
on a real mixture, and meanwhile, in a real `curator app` in Chromium, the map loads, a lasso
selects, a delete commits and an undo restores; the job then ends with the same vectors as the
same job run alone. Jobs hold the database only for short reads and writes (storage.Database),
so the app's reads and writes get in between."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import storage
from bench import mixtures
from bench.app_driver import map_frame, select_with_lasso, settle, start_app, stop_app
from storage import embeddings as vector_rows
from tests.conftest import DATA, Curator, needs_data, query
from tests.test_browser import CHROMIUM, PENTAGON

pytestmark = [
    pytest.mark.slow,
    needs_data,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="needs Debian's chromium (`make test` installs it)"),
]
EMBED = ["embed", "--commit-every", "128"]  # the exact model, many short commits


def _vectors(db: Path) -> tuple[np.ndarray, np.ndarray]:
    with storage.Database(db).reading() as con:
        (set_id,) = con.execute("SELECT id FROM embedding_sets WHERE model NOT LIKE 'fast:%'").fetchone()
        return vector_rows.load_vectors(con, set_id)


def _start(db: Path, *args: str) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("curator")
    return subprocess.Popen([str(exe), "--db", str(db), *args], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def test_lasso_delete_and_undo_while_an_embed_job_runs(tmp_path):
    from playwright.sync_api import sync_playwright

    db = tmp_path / "mixture.duckdb"
    mixtures.build(db, DATA, per_family=500)
    Curator(db)("map", "--fast")  # the map the app shows while the exact vectors are computed
    alone = tmp_path / "alone.duckdb"
    shutil.copyfile(db, alone)
    assert _start(alone, *EMBED).wait() == 0

    server, url = start_app(db, tmp_path / "app.log")
    job = _start(db, *EMBED)
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            page = browser.new_page(viewport={"width": 1500, "height": 1100})
            page.set_default_timeout(60_000)
            page.goto(url)
            frame = map_frame(page)
            count = select_with_lasso(page, frame, PENTAGON)
            assert count > 0

            page.get_by_label("Delete reason").fill("during a job")
            page.get_by_role("button", name="Delete", exact=True).click()
            settle(page)
            page.get_by_text(re.compile(r"delete: [\d,]+ pairs changed")).wait_for()
            assert query(db, "SELECT count(*) FROM pairs WHERE deleted_op IS NOT NULL")[0][0] == count
            frame.wait_for_function(f"window.curatorMap.dimCount === {count}")

            page.get_by_role("button", name="Undo last operation").click()
            settle(page)
            page.get_by_text(re.compile(r"undid operation \d+")).wait_for()
            assert query(db, "SELECT count(*) FROM pairs WHERE deleted_op IS NOT NULL")[0][0] == 0
            frame.wait_for_function("window.curatorMap.dimCount === 0")
            assert job.poll() is None, "the job ended before the app was used: make the mixture larger"
            browser.close()
        assert job.wait(timeout=600) == 0, job.stderr.read().decode()
    finally:
        job.kill()
        stop_app(server)

    ids, vectors = _vectors(db)
    alone_ids, alone_vectors = _vectors(alone)
    assert np.array_equal(ids, alone_ids)
    assert np.allclose(vectors, alone_vectors, atol=1e-5)
    (status, hold), (ops,) = (
        query(db, "SELECT status, longest_hold_s FROM jobs WHERE kind = 'embed'")[0],
        query(db, "SELECT count(*) FROM operations")[0],
    )
    assert status == "done" and ops == 2  # the delete and its undo, both committed
    assert hold < 5  # the job held the file for moments only
