"""Opening the database: path resolution, the write lock, safe settings, migrations."""

from __future__ import annotations

import os
import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TypeVar

import duckdb

from storage.schema import MIGRATIONS

DEFAULT_DB = "curator.duckdb"

# Extensions are never fetched at run time: offline laptops have no registry to fetch from.
_OFFLINE = {"autoinstall_known_extensions": False, "autoload_known_extensions": False}


class DatabaseLocked(RuntimeError):
    """Another process holds the database's write lock (DuckDB allows one writer process)."""

    def __init__(self, path: str, detail: str):
        pid = re.search(r"PID (\d+)", detail)
        holder = f"process {pid.group(1)}" if pid else "another process"
        super().__init__(
            f"{path} is in use by {holder} (DuckDB lets one process write at a time). "
            "Wait for it to finish, stop it (for the web app: close `curator app`), "
            "or point --db at another file."
        )
        self.path = path
        self.pid = int(pid.group(1)) if pid else None


def resolve_db_path(path: str | os.PathLike | None = None) -> Path:
    """--db wins, then $CURATOR_DB, then ./curator.duckdb."""
    return Path(path or os.environ.get("CURATOR_DB") or DEFAULT_DB)


def _open(path: Path, read_only: bool, config: dict) -> duckdb.DuckDBPyConnection:
    try:
        return duckdb.connect(str(path), read_only=read_only, config={**_OFFLINE, **config})
    except duckdb.IOException as err:
        if "lock" in str(err).lower():
            raise DatabaseLocked(str(path), str(err)) from None
        raise


T = TypeVar("T")

# Seconds a job waits for the file before giving up (CURATOR_LOCK_WAIT overrides it): a job must
# outlast the app's reads, other jobs' short writes and an operation the app applies, never
# fail because of them; only a process that keeps the file open for minutes stops it.
JOB_LOCK_WAIT = 600.0


def job_lock_wait() -> float:
    return float(os.environ.get("CURATOR_LOCK_WAIT") or JOB_LOCK_WAIT)


def _retrying(open_: Callable[[], T], wait: float) -> T:
    """open_() again every 50 ms while the file is locked by another process, up to `wait` s."""
    deadline = time.monotonic() + wait
    while True:
        try:
            return open_()
        except DatabaseLocked:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.05)


# Seconds a writer waits for the lock before saying who holds it. The web app opens the file
# read-only for moments on each rerun; a job it has just started (Jobs page: the page reads
# the database right after starting the child) must wait those out, not fail. A fresh
# machine's first run was seen to lose that race.
LOCK_WAIT = 5.0


def connect(path: str | os.PathLike | None = None, wait: float = LOCK_WAIT) -> duckdb.DuckDBPyConnection:
    """Open (creating if needed) the database for writing, migrated to the current schema;
    DatabaseLocked if another process still holds it after `wait` seconds."""
    db_path = resolve_db_path(path)
    if db_path.parent != Path(""):
        db_path.parent.mkdir(parents=True, exist_ok=True)
    con = _retrying(lambda: _open(db_path, read_only=False, config={}), wait)
    migrate(con)
    return con


def connect_read_only(path: str | os.PathLike | None = None, wait: float = 0.0) -> duckdb.DuckDBPyConnection:
    """A connection that can read the database and nothing else; DatabaseLocked if a writer
    still holds it after `wait` seconds.

    read_only blocks writes to the database; disabling external access blocks COPY TO,
    ATTACH, file readers and extension installs; locking the configuration stops a query
    from switching either back on. This is what `curator sql` hands user SQL to.
    """
    db_path = resolve_db_path(path)
    if not db_path.exists():
        raise FileNotFoundError(f"no database at {db_path} (run `curator ingest` or `curator demo` first)")
    config = {"enable_external_access": False, "lock_configuration": True}

    def sandboxed() -> duckdb.DuckDBPyConnection:
        return _retrying(lambda: _open(db_path, read_only=True, config=config), wait)

    con = sandboxed()
    if schema_version(con) >= len(MIGRATIONS):
        return con  # the usual case: one open (each costs ~50 ms on a 1M-pair file)
    con.close()
    connect(db_path, wait=max(wait, LOCK_WAIT)).close()  # bring an older file up to date before reading it
    return sandboxed()


class Database:
    """A database file that a job opens only for moments: `with db.reading() as con` (read-only,
    beside the app's readers) and `with db.writing() as con` (one transaction, committed when the
    block ends, rolled back on an error), each closing the file at the end of its block.

    DuckDB lets one process write a file, and while it is open for writing no other process can
    even read it; so a job reads what it needs, closes, computes with the file closed, and opens
    it again to commit a batch. The app and other jobs get in between. `longest_hold` is the
    longest the file was held in one block, in seconds (what bench/concurrency.py reports).
    """

    def __init__(self, path: str | os.PathLike | None = None, wait: float | None = None):
        self.path = resolve_db_path(path)
        self.wait = job_lock_wait() if wait is None else wait
        self.longest_hold = 0.0
        self._migrated = False
        self._open = 0  # blocks open in this process (a write cannot open beside a read)

    def __repr__(self) -> str:
        return f"Database({str(self.path)!r})"

    @contextmanager
    def reading(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if not self._migrated:  # an older file is brought up to date by its first opening
            with self.writing():
                pass
        with self._held(_retrying(lambda: _open(self.path, read_only=True, config={}), self.wait)) as con:
            yield con

    @contextmanager
    def writing(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._held(self._connect()) as con, _transaction(con):
            yield con

    @contextmanager
    def batches(self, hold: float) -> Iterator[BatchWriter]:
        """A writer for a job that commits many batches in a row (ingest): see BatchWriter."""
        writer = BatchWriter(self, hold)
        try:
            yield writer
        finally:
            writer.close()

    @property
    def is_open(self) -> bool:
        """Whether a reading or writing block is open now (in this process)."""
        return self._open > 0

    def _connect(self) -> duckdb.DuckDBPyConnection:
        """A writable connection, the file migrated by it (connect)."""
        con = connect(self.path, wait=self.wait)
        self._migrated = True
        return con

    @contextmanager
    def _held(self, con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
        """con, closed when the block ends; the time it was open counts towards longest_hold."""
        started = time.monotonic()
        self._open += 1
        try:
            yield con
        finally:
            self._open -= 1
            con.close()
            self.longest_hold = max(self.longest_hold, time.monotonic() - started)


@contextmanager
def _transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """One transaction: committed when the block ends, rolled back on an error."""
    con.begin()
    try:
        yield
    except BaseException:
        con.rollback()
        raise
    con.commit()


class BatchWriter:
    """Commits batch after batch, each in a transaction of its own (`with writer.batch() as con`),
    keeping the file open across batches for up to `hold` seconds and then closing it, so that
    readers get in between. Closing the file checkpoints what was written since it was opened
    (~1.5 s for 100k pairs of text): closing after every batch doubled the ingest's time."""

    def __init__(self, db: Database, hold: float):
        self.db, self.hold = db, hold
        self._stack: ExitStack | None = None  # the database's hold on the open connection
        self._con: duckdb.DuckDBPyConnection | None = None
        self._opened = 0.0

    @contextmanager
    def batch(self) -> Iterator[duckdb.DuckDBPyConnection]:
        if self._stack is None:
            self._stack = ExitStack()
            self._con = self._stack.enter_context(self.db._held(self.db._connect()))
            self._opened = time.monotonic()
        try:
            with _transaction(self._con):
                yield self._con
        except BaseException:
            self.close()
            raise
        if time.monotonic() - self._opened >= self.hold:
            self.close()

    def close(self) -> None:
        if self._stack is not None:
            self._stack.close()
            self._stack = self._con = None


def schema_version(con: duckdb.DuckDBPyConnection) -> int:
    exists = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_name = 'schema_migrations'"
    ).fetchone()[0]
    if not exists:
        return 0
    return con.execute("SELECT coalesce(max(version), 0) FROM schema_migrations").fetchone()[0]


def migrate(con: duckdb.DuckDBPyConnection) -> int:
    """Apply every migration newer than the file's version, each in its own transaction."""
    con.execute("CREATE TABLE IF NOT EXISTS schema_migrations (version INTEGER PRIMARY KEY, applied_at TIMESTAMP)")
    current = schema_version(con)
    for version, statements in enumerate(MIGRATIONS, start=1):
        if version <= current:
            continue
        con.begin()
        for statement in statements:
            con.execute(statement)
        con.execute("INSERT INTO schema_migrations VALUES (?, now())", [version])
        con.commit()
    return len(MIGRATIONS)
