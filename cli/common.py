"""What every command module shares: the database path, read-only access to it, --ray, a job's
session, and the options of the commands that send chat requests (distill, quality judge)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

import click

import storage
from cli.output import ProgressBar, print_json
from curator import distill

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


# --- commands that send chat requests to an OpenAI-compatible API (distill, quality judge) ---

R = TypeVar("R")
_POLICY = distill.RetryPolicy()


def price_table(path: str | None) -> dict:
    return distill.parse_prices(Path(path).read_text()) if path else distill.DEFAULT_PRICES


def retry_policy(max_tries: int, backoff: float) -> distill.RetryPolicy:
    return distill.RetryPolicy(max_tries=max_tries, base_delay=backoff, max_delay=max(_POLICY.max_delay, backoff))


def request_options(what: str):
    """The options of a command that sends chat requests to an OpenAI-compatible API (distill,
    quality judge): model, server, concurrency, timeout, retries, prices. `what`: the unit
    retried ("prompt", "pair")."""
    options = [
        click.option("--model", required=True, help="Model name as the API knows it."),
        click.option(
            "--base-url",
            help="Any OpenAI-compatible server, e.g. http://127.0.0.1:8080/v1 (default: "
            "$OPENAI_BASE_URL, else OpenAI). The key is read from OPENAI_API_KEY.",
        ),
        click.option(
            "--concurrency",
            default=8,
            show_default=True,
            type=click.IntRange(min=1),
            help="Requests in flight at once.",
        ),
        click.option(
            "--timeout",
            default=120.0,
            show_default=True,
            type=click.FloatRange(min=0, min_open=True),
            help="Seconds per request before it counts as failed and is retried.",
        ),
        click.option(
            "--max-tries",
            default=_POLICY.max_tries,
            show_default=True,
            type=click.IntRange(min=1),
            help=f"Requests per {what} before its error is recorded and the run moves on.",
        ),
        click.option(
            "--backoff",
            default=_POLICY.base_delay,
            show_default=True,
            type=click.FloatRange(min=0),
            help="Seconds before the 2nd try; doubles each try (with jitter) up to 60. Retry-After wins.",
        ),
        click.option(
            "--prices",
            type=click.Path(exists=True, dir_okay=False),
            help="Price table for the spend shown (see `curator cost`).",
        ),
    ]

    def decorate(command):
        for option in reversed(options):  # click lists options in the order they are given here
            command = option(command)
        return command

    return decorate


def run_and_report(
    ctx,
    unit: str,
    work: Callable[[storage.Database, ProgressBar], R],
    as_json: bool,
    print_report: Callable[[R], None],
) -> R:
    """work(database, progress bar) -> a report dataclass, printed as JSON or by print_report."""
    with job_session(ctx, unit=unit, unit_scale=False) as (db, bar):
        report = work(db, bar)
    if as_json:
        print_json(asdict(report))
    else:
        print_report(report)
    return report
