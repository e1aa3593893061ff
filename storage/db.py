"""Opening the database: path resolution, the write lock, safe settings, migrations."""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

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
    deadline = time.monotonic() + wait
    while True:
        try:
            con = _open(db_path, read_only=False, config={})
            break
        except DatabaseLocked:
            if time.monotonic() >= deadline:
                raise
            time.sleep(0.1)
    migrate(con)
    return con


def connect_read_only(path: str | os.PathLike | None = None) -> duckdb.DuckDBPyConnection:
    """A connection that can read the database and nothing else.

    read_only blocks writes to the database; disabling external access blocks COPY TO,
    ATTACH, file readers and extension installs; locking the configuration stops a query
    from switching either back on. This is what `curator sql` hands user SQL to.
    """
    db_path = resolve_db_path(path)
    if not db_path.exists():
        raise FileNotFoundError(f"no database at {db_path} (run `curator ingest` or `curator demo` first)")
    config = {"enable_external_access": False, "lock_configuration": True}
    con = _open(db_path, read_only=True, config=config)
    if schema_version(con) >= len(MIGRATIONS):
        return con  # the usual case: one open (each costs ~50 ms on a 1M-pair file)
    con.close()
    connect(db_path).close()  # bring an older file up to date before reading it
    return _open(db_path, read_only=True, config=config)


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
