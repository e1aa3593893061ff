"""The only package that speaks SQL: schema, migrations and queries over one DuckDB file."""

from storage.db import DEFAULT_DB, Database, DatabaseLocked, connect, connect_read_only, resolve_db_path

__all__ = ["DEFAULT_DB", "Database", "DatabaseLocked", "connect", "connect_read_only", "resolve_db_path"]
