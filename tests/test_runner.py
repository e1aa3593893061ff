"""jobs.runner: the job row's life cycle and the background prefetch."""

from __future__ import annotations

import subprocess
import sys
import threading
import time

import pytest

import storage
from jobs import runner
from jobs.runner import Job, prefetch
from storage import jobs as job_rows


def test_prefetch_yields_in_order_and_runs_ahead():
    produced = []

    def items():
        for i in range(5):
            produced.append(i)
            yield i

    seen = []
    for item in prefetch(items(), depth=1):
        time.sleep(0.05)  # the producer is free to work meanwhile
        seen.append((item, len(produced)))
    assert [i for i, _ in seen] == [0, 1, 2, 3, 4]
    assert any(n > item + 1 for item, n in seen)  # it was ahead of the consumer


def test_prefetch_raises_the_producers_error_in_the_consumer():
    def items():
        yield 1
        raise ValueError("line 7: broken")

    got = []
    with pytest.raises(ValueError, match="line 7: broken"):
        for item in prefetch(items()):
            got.append(item)
    assert got == [1]


def test_prefetch_stops_the_producer_when_the_consumer_stops():
    def items():
        i = 0
        while True:
            yield i
            i += 1

    before = threading.active_count()
    for item in prefetch(items(), depth=2):
        if item == 3:
            break
    assert threading.active_count() == before  # the producer thread is gone


def test_a_failing_job_is_recorded_with_its_error(tmp_path):
    db = storage.Database(tmp_path / "j.duckdb")
    with pytest.raises(RuntimeError):
        with Job(db, "demo-kind", {"x": 1}) as job:
            job.counts = {"done": 3}
            with db.writing() as con:
                con.execute("CREATE TABLE half_written (a INTEGER)")
                raise RuntimeError("disk full")
    with db.reading() as con:
        (row,) = job_rows.listing(con)
        half_written = con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_written'"
        ).fetchone()[0]
    assert (row["kind"], row["status"], row["error"], row["counts"]) == (
        "demo-kind",
        "failed",
        "RuntimeError: disk full",
        {"done": 3},
    )
    assert half_written == 0  # the open transaction was rolled back, not committed
    assert row["longest_hold_s"] is not None


def test_a_job_leaves_the_file_closed_between_its_reads_and_writes(tmp_path):
    """What lets the app read while a job runs: outside its blocks the job holds nothing, so
    another process opens the file (read-only, as the app does) mid-job."""
    db = storage.Database(tmp_path / "j.duckdb")
    opened_beside = []

    def other_process_reads() -> int:
        probe = subprocess.run(
            [
                sys.executable,
                "-c",
                f"import storage; con = storage.connect_read_only({str(db.path)!r}); "
                "print(con.execute('SELECT count(*) FROM jobs').fetchone()[0])",
            ],
            capture_output=True,
            text=True,
        )
        return probe.returncode

    with Job(db, "demo-kind", {}) as job:
        with db.writing() as con:
            job.report(1, 2, "half", con)
        opened_beside.append(other_process_reads())
        with db.reading():
            opened_beside.append(other_process_reads())  # readers share the file
        with db.writing():
            opened_beside.append(other_process_reads())  # a writer holds it alone
    assert opened_beside[:2] == [0, 0] and opened_beside[2] != 0


def test_progress_is_written_at_most_every_few_seconds_outside_a_batch(tmp_path, monkeypatch):
    db = storage.Database(tmp_path / "j.duckdb")
    seen = []
    with Job(db, "demo-kind", {}, progress=lambda done, total, message: seen.append(done)) as job:
        job.report(1, 10, "first")  # within PROGRESS_WRITE_EVERY of the start: not written
        with db.reading() as con:
            assert job_rows.listing(con)[0]["message"] is None
        monkeypatch.setattr(runner, "PROGRESS_WRITE_EVERY", 0.0)
        job.report(2, 10, "second")
        with db.reading() as con:
            assert job_rows.listing(con)[0]["message"] == "second"
    assert seen == [1, 2]  # the caller's callback hears every report
