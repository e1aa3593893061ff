"""The job row's life cycle around a piece of work."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from queue import Full, Queue
from typing import TypeVar

import duckdb

from storage import jobs as job_rows
from storage.db import Database

T = TypeVar("T")

# progress(done, total, message): units are the job's own (bytes for ingest).
Progress = Callable[[int, int, str], None]


def no_progress(done: int, total: int, message: str) -> None:
    pass


# The job row's progress is written at most this often (seconds) outside a batch's own write:
# each write opens the file, which the app is reading between them.
PROGRESS_WRITE_EVERY = 2.0


@dataclass
class Job:
    """`with Job(db, kind, params) as job:` creates the row; leaving the block marks it done
    with job.counts, or failed with the error (the exception still propagates). Each of these is
    a short write of its own: a job holds the database only while it reads or writes."""

    db: Database
    kind: str
    params: dict
    progress: Progress = no_progress
    counts: dict = field(default_factory=dict)
    id: int = 0
    _written_at: float = 0.0

    def __enter__(self) -> Job:
        with self.db.writing() as con:
            self.id = job_rows.create(con, self.kind, self.params)
        self._written_at = time.monotonic()
        return self

    def report(self, done: int, total: int, message: str, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Progress to the caller's `progress` callback, and to the job row: through `con` when
        the caller is writing a batch (it commits with the batch), else in a short write of its
        own at most every PROGRESS_WRITE_EVERY seconds (not while the job reads the database in
        a long block: the next report writes it)."""
        self.progress(done, total, message)
        fraction = done / total if total else 0.0
        if con is not None:
            job_rows.update(con, self.id, fraction, message, self.counts)
        elif time.monotonic() - self._written_at >= PROGRESS_WRITE_EVERY and not self.db.is_open:
            with self.db.writing() as own:
                job_rows.update(own, self.id, fraction, message, self.counts)
        else:
            return
        self._written_at = time.monotonic()

    def __exit__(self, kind, error, traceback) -> bool:
        if error is None:
            with self.db.writing() as con:
                job_rows.finish(con, self.id, self.counts, self.db.longest_hold)
            return False
        message = "interrupted by the user" if isinstance(error, KeyboardInterrupt) else f"{kind.__name__}: {error}"
        with self.db.writing() as con:
            job_rows.fail(con, self.id, message, self.counts, self.db.longest_hold)
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
