"""The job row's life cycle around a piece of work."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from queue import Full, Queue
from typing import TypeVar

import duckdb

from storage import jobs as job_rows

T = TypeVar("T")

# progress(done, total, message): units are the job's own (bytes for ingest).
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, message: str) -> None:
    pass


@dataclass
class Job:
    """`with Job(con, kind, params) as job:` creates the row; leaving the block marks it done
    with job.counts, or failed with the error (the exception still propagates)."""

    con: duckdb.DuckDBPyConnection
    kind: str
    params: dict
    progress: Progress = no_progress
    counts: dict = field(default_factory=dict)
    id: int = 0

    def __enter__(self) -> Job:
        self.id = job_rows.create(self.con, self.kind, self.params)
        return self

    def report(self, done: int, total: int, message: str) -> None:
        """Record progress on the job row (inside the caller's transaction, if one is open)."""
        job_rows.update(self.con, self.id, done / total if total else 0.0, message, self.counts)
        self.progress(done, total, message)

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            job_rows.finish(self.con, self.id, self.counts)
            return False
        message = "interrupted by the user" if isinstance(error, KeyboardInterrupt) else f"{kind.__name__}: {error}"
        try:
            self.con.rollback()
        except duckdb.TransactionException:
            pass  # no batch was half-written
        job_rows.fail(self.con, self.id, message, self.counts)
        return False


def prefetch(items: Iterable[T], depth: int = 1) -> Iterator[T]:
    """Iterate `items` in a background thread, at most `depth` items ahead of the consumer.

    Ingest uses it to read, parse and convert the next batch in Python while DuckDB, which
    releases the GIL, inserts the current one: the two halves then run on two cores. An error
    in the producer is raised in the consumer; a consumer that stops early stops the producer.
    """
    queue: Queue = Queue(maxsize=depth)
    stop = threading.Event()
    end = object()

    def put(item) -> bool:
        while not stop.is_set():
            try:
                queue.put(item, timeout=0.1)
                return True
            except Full:
                continue
        return False

    def produce() -> None:
        try:
            for item in items:
                if not put((item, None)):
                    return
            put((end, None))
        except BaseException as err:  # handed to the consumer, which re-raises it
            put((end, err))

    thread = threading.Thread(target=produce, name="prefetch", daemon=True)
    thread.start()
    try:
        while True:
            item, error = queue.get()
            if item is end:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join()
