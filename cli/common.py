"""What every command module shares: the database path, read-only access to it, --ray."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import TYPE_CHECKING

import click

import storage
from cli.output import ProgressBar

if TYPE_CHECKING:
    from jobs.ray_pool import RayCluster


def database(ctx: click.Context) -> str:
    return ctx.obj["db"]


def read(ctx: click.Context, query_fn):
    """query_fn(connection) on a read-only connection that is closed afterwards."""
    con = storage.connect_read_only(database(ctx))
    try:
        return query_fn(con)
    finally:
        con.close()


def ray_options(command):
    """--ray [ADDRESS] and --workers, for a command whose heavy stage can run on a Ray cluster."""
    command = click.option(
        "--workers",
        type=click.IntRange(min=1),
        help="With --ray: Ray actors (default: one per GPU, else one per CPU of the cluster).",
    )(command)
    return click.option(
        "--ray",
        "ray_address",
        is_flag=False,
        flag_value="auto",
        default=None,
        metavar="[ADDRESS]",
        help="Run the heavy stage on a Ray cluster (needs `pip install curator[ray]`): --ray alone starts "
        "a local instance on 127.0.0.1, --ray ADDRESS joins a cluster.",
    )(command)


@contextlib.contextmanager
def ray_cluster(ray_address: str | None, workers: int | None) -> Iterator[RayCluster | None]:
    """The cluster --ray asks for (its actors ended afterwards), or None to run here."""
    if ray_address is None:
        if workers is not None:
            raise click.UsageError("--workers goes with --ray")
        yield None
        return
    from jobs.ray_pool import RayCluster

    try:
        cluster = RayCluster(ray_address, workers)
    except ModuleNotFoundError as err:
        if err.name != "ray":
            raise
        raise click.ClickException("--ray needs the ray extra: pip install 'curator[ray]'") from None
    try:
        yield cluster
    finally:
        cluster.close()


@contextlib.contextmanager
def job_session(ctx: click.Context, **bar_options) -> Iterator[tuple[storage.Database, ProgressBar]]:
    """The database (which the job opens only for its short reads and writes) and a progress
    bar for a job, the bar closed after it whatever happens: the shape of every command that
    runs a job."""
    bar = ProgressBar(**bar_options)
    try:
        yield storage.Database(database(ctx)), bar
    finally:
        bar.close()
