"""What every command module shares: the database path and read-only access to it."""
from __future__ import annotations

import click

import storage


def database(ctx: click.Context) -> str:
    return ctx.obj["db"]


def read(ctx: click.Context, query_fn):
    """query_fn(connection) on a read-only connection that is closed afterwards."""
    con = storage.connect_read_only(database(ctx))
    try:
        return query_fn(con)
    finally:
        con.close()
