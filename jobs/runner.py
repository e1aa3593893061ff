"""The job row's life cycle around a piece of work."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import duckdb

from storage import jobs as job_rows

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

    def __enter__(self) -> "Job":
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
