"""jobs.runner: the job row's life cycle and the background prefetch."""

from __future__ import annotations

import threading
import time

import pytest

import storage
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
    con = storage.connect(tmp_path / "j.duckdb")
    with pytest.raises(RuntimeError):
        with Job(con, "demo-kind", {"x": 1}) as job:
            job.counts = {"done": 3}
            con.begin()
            con.execute("CREATE TABLE half_written (a INTEGER)")
            raise RuntimeError("disk full")
    (row,) = job_rows.listing(con)
    assert (row["kind"], row["status"], row["error"], row["counts"]) == (
        "demo-kind",
        "failed",
        "RuntimeError: disk full",
        {"done": 3},
    )
    # The open transaction was rolled back, not committed.
    assert (
        con.execute("SELECT count(*) FROM information_schema.tables WHERE table_name = 'half_written'").fetchone()[0]
        == 0
    )
