"""Entry point of the `curator` console script."""

from __future__ import annotations

import importlib
import os
from typing import TYPE_CHECKING

import click

# OpenMP threads (torch's and llama.cpp's share one runtime, configured once, when it loads)
# spin while waiting for each other; on a busy machine a spinning thread holds the core its
# partner needs. Measured on 2 shared cores: torch scoring 19 s -> 4 s, llama.cpp 26 s -> 6 s
# (bench/quantize.py measures both).
# Set before anything loads torch, for every command (and for tests, which import this module).
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import storage
from cli.common import database, job_session, ray_cluster, ray_options, read
from cli.output import StageBars, print_json, print_table
from curator import __version__, embedding, formats, projection, readers
from curator.errors import UserError
from jobs.ingest import IngestOptions, IngestReport
from jobs.ingest import ingest as run_ingest
from storage import jobs as job_rows
from storage import maps as map_rows
from storage import pairs as pair_rows
from storage import query
from storage import rejects as reject_rows

if TYPE_CHECKING:
    from jobs.map import MapReport

# Commands that live in their own modules, one module per capability, by name. A module is
# imported when one of its commands runs: `curator ingest` need not load the map's,
# distillation's or training's libraries (start-up 2.3 s -> 0.6 s). tests/test_cli.py checks
# that this table and the modules' COMMANDS lists agree.
LAZY_COMMANDS = {
    "app": "cli.app",
    "compare": "cli.compare",
    "concept": "cli.concept",
    "quality": "cli.quality",
    "chat": "cli.chat",
    "serve": "cli.chat",
    "distill": "cli.distill",
    "cost": "cli.distill",
    "prompts": "cli.distill",
    "duplicates": "cli.duplicates",
    "blobs": "cli.duplicates",
    "export": "cli.export",
    "tag": "cli.operations",
    "untag": "cli.operations",
    "delete": "cli.operations",
    "restore": "cli.operations",
    "log": "cli.operations",
    "undo": "cli.operations",
    "replay": "cli.operations",
    "version": "cli.operations",
    "quantize": "cli.quantize",
    "eval": "cli.quantize",
    "signals": "cli.signals",
    "train": "cli.train",
    "score": "cli.train",
}


class CuratorGroup(click.Group):
    """Turns expected failures into one clear line and a non-zero exit, never a traceback;
    loads the commands of LAZY_COMMANDS when they are asked for."""

    def list_commands(self, ctx):
        return sorted({*super().list_commands(ctx), *LAZY_COMMANDS})

    def get_command(self, ctx, name):
        if name in self.commands or name not in LAZY_COMMANDS:
            return super().get_command(ctx, name)
        module = importlib.import_module(LAZY_COMMANDS[name])
        return next(command for command in module.COMMANDS if command.name == name)

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except storage.DatabaseLocked as err:
            raise click.ClickException(str(err)) from None
        except (UserError, OSError) as err:  # OSError: missing files, unreadable folders
            # What the user can fix, in one line; any other exception is a bug and keeps its
            # traceback.
            raise click.ClickException(str(err)) from None


@click.group(cls=CuratorGroup)
@click.option(
    "--db",
    "db_path",
    envvar="CURATOR_DB",
    default=storage.DEFAULT_DB,
    show_default=True,
    help="DuckDB file to use (or set CURATOR_DB).",
)
@click.version_option(__version__, prog_name="curator")
@click.pass_context
def cli(ctx: click.Context, db_path: str) -> None:
    """curator: ingest, map, curate and export LLM fine-tuning data."""
    ctx.obj = {"db": db_path}


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=str))
@click.option("--source", help="Source name for every pair (else the record's own, else the file name).")
@click.option(
    "--format",
    "fmt",
    default="auto",
    show_default=True,
    type=click.Choice(("auto",) + formats.FORMATS),
    help="Record format; auto-detected per file.",
)
@click.option("--prompt-field", help="Read any flat records: the key holding the prompt (with --response-field).")
@click.option("--response-field", help="The key holding the response (with --prompt-field).")
@click.option(
    "--max-record-bytes",
    default=readers.DEFAULT_MAX_RECORD_BYTES,
    show_default=True,
    type=int,
    help="Records larger than this are rejected, not read.",
)
@click.option(
    "--batch-size",
    default=readers.BATCH_RECORDS,
    show_default=True,
    type=int,
    help="Records committed per transaction (the resume granularity).",
)
@click.pass_context
def ingest(ctx, paths, source, fmt, prompt_field, response_field, max_record_bytes, batch_size):
    """Read prompt-response pairs from files (.jsonl .json .csv .parquet, optionally .gz/.zst)."""
    options = IngestOptions(
        source=source,
        format=fmt,
        prompt_field=prompt_field,
        response_field=response_field,
        max_record_bytes=max_record_bytes,
    )
    with job_session(ctx) as (db, bar):
        report = run_ingest(db, list(paths), options, progress=bar, batch_records=batch_size)
    _print_ingest(report)
    accepted = report.total("pairs")
    failed = [f for f in report.files if f.status == "failed"]
    if failed or (accepted == 0 and any(f.status != "already ingested" for f in report.files)):
        raise click.ClickException(
            "no pairs were accepted" + ("" if failed else "; see `curator rejects` for why")
            if accepted == 0
            else f"{len(failed)} file(s) could not be ingested"
        )


def _print_ingest(report: IngestReport) -> None:
    for f in report.files:
        if f.status == "already ingested":
            click.echo(f"{f.path}: already ingested, nothing to do ({f.note})")
        elif f.status == "failed":
            click.echo(f"{f.path}: not ingested: {f.note}", err=True)
        else:
            extra = f" ({f.note})" if f.note else ""
            click.echo(
                f"{f.path}: {f.status}{extra}: {f.pairs:,} pairs, {f.rejects:,} rejected, "
                f"{f.duplicates:,} exact duplicates, format {f.format or 'not recognised'}"
            )
    rejects = report.total("rejects")
    click.echo(
        f"job {report.job_id}: {report.total('pairs'):,} pairs added, {rejects:,} rejected, "
        f"{report.total('duplicates'):,} exact duplicates (kept, counted)"
    )
    if rejects:
        click.echo(
            f"warning: {rejects:,} record(s) rejected; `curator rejects --job {report.job_id}` "
            "lists them with file, line and reason",
            err=True,
        )


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def stats(ctx, as_json):
    """Counts of pairs, deleted pairs, rejects and pairs per source."""
    result = read(ctx, pair_rows.stats)
    if as_json:
        print_json(result)
        return
    click.echo(f"pairs     {result['pairs']:,}  (deleted {result['deleted']:,})")
    click.echo(f"rejects   {result['rejects']:,}")
    click.echo(f"exact duplicates  {result['exact_duplicates']:,}")
    click.echo(
        f"files     {result['files']:,}"
        + (
            f"  ({result['files_unfinished']} unfinished: rerun the same ingest to resume)"
            if result["files_unfinished"]
            else ""
        )
    )
    if result["sources"]:
        print_table(["source", "pairs"], [(k, f"{v:,}") for k, v in result["sources"].items()])


@cli.command()
@click.option("--job", "job_id", type=int, help="Only this ingest job's rejects.")
@click.option("--limit", type=int, help="At most this many.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of {job, file, line, reason, raw}.")
@click.pass_context
def rejects(ctx, job_id, limit, as_json):
    """Records that were not ingested, with file, line and reason."""
    rows = read(ctx, lambda con: reject_rows.listing(con, job_id, limit))
    if as_json:
        print_json(rows)
        return
    print_table(
        ["job", "file", "line", "reason", "raw"],
        [(r["job"], r["file"], r["line"], r["reason"], r["raw"]) for r in rows],
        max_width=50,
    )


@cli.command()
@click.option("--limit", default=50, show_default=True, type=int)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def jobs(ctx, limit, as_json):
    """Jobs, newest first, with status, progress and counts."""
    rows = read(ctx, lambda con: job_rows.listing(con, limit))
    if as_json:
        print_json(rows)
        return
    print_table(
        ["id", "kind", "status", "progress", "started", "counts / error"],
        [
            (r["id"], r["kind"], r["status"], f"{r['progress']:.0%}", r["started_at"], r["error"] or r["counts"])
            for r in rows
        ],
        max_width=80,
    )


@cli.command()
@click.argument("statement")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array of objects.")
@click.pass_context
def sql(ctx, statement, as_json):
    """Run read-only SQL (e.g. over pairs_view); nothing can be written through it."""
    columns, rows = read(ctx, lambda con: query.run_read_only(con, statement))
    if as_json:
        print_json([dict(zip(columns, row)) for row in rows])
    else:
        print_table(columns, rows)


@cli.command()
@click.option(
    "--full",
    is_flag=True,
    help="The whole loop: also signals, duplicates, an automatic curation, version, export, a short "
    "LoRA run, GGUF files (q8_0, q4_1) and eval, into DB_DIR/demo-full/; reruns skip finished "
    "stages.",
)
@click.pass_context
def demo(ctx, full):
    """Set up the demo database: ingest the bundled demo set, map it, print its stats."""
    if full:
        _demo_full(database(ctx))
        return
    from jobs import demo as demo_job

    with job_session(ctx, unit="", unit_scale=False) as (db, bar):
        ingested, mapped = demo_job.run(db, progress=bar)
        with db.reading() as con:
            result = pair_rows.stats(con)
    _print_ingest(ingested)
    _print_map(mapped)
    click.echo(f"\ndatabase {database(ctx)}: {result['pairs']:,} pairs from {len(result['sources'])} sources")
    print_table(["source", "pairs"], [(k, f"{v:,}") for k, v in result["sources"].items()])
    click.echo(f"\nnext: curator --db {database(ctx)} clusters")


def _demo_full(db_path: str) -> None:
    from jobs import demo as demo_job

    bars = StageBars()
    try:
        report = demo_job.run_full(db_path, progress=bars, notify=bars.stage)
    finally:
        bars.bar.close()

    def number(value, fmt: str) -> str:
        return "" if value is None else format(value, fmt)

    click.echo(
        f"\nresponse perplexity (token-weighted); ppl: `curator quantize`'s measure on the run's "
        f"validation subset; eval: `curator eval` on all {report.eval_examples:,} examples of "
        "export/val.jsonl (mean: per example, clipped at 100)"
    )
    print_table(
        ["model", "engine", "size", "ppl", "gain kept", "eval ppl", "eval mean"],
        [
            (
                r["model"],
                r["engine"],
                "" if r["size_bytes"] is None else f"{r['size_bytes'] / 1e6:,.1f} MB",
                number(r["ppl"], ".3f"),
                number(r["gain_kept"], ".0%"),
                number(r["eval_ppl_tokens"], ".3f"),
                number(r["eval_ppl_mean"], ".3f"),
            )
            for r in report.rows
        ],
    )
    click.echo(
        f"\n{report.directory} ({report.seconds:,.0f} s); chat with the tuned file beside the base: "
        f"curator --db {db_path} app (Chat page), or curator chat {report.directory}/model-q4_1.gguf"
    )


FIELD = click.Choice(embedding.FIELDS)


@cli.command()
@click.option("--model", help="sentence-transformers model name or local path (default: the bundled all-MiniLM-L6-v2).")
@click.option("--field", default="prompt", show_default=True, type=FIELD, help="What to embed.")
@click.option(
    "--fast", is_flag=True, help="Static model2vec embeddings distilled from the model (~50x faster, rougher)."
)
@click.option("--batch-size", default=embedding.BATCH_SIZE, show_default=True, type=int)
@click.option(
    "--commit-every",
    default=4096,
    show_default=True,
    type=int,
    help="Pairs per committed shard: the resume granularity.",
)
@ray_options
@click.pass_context
def embed(ctx, model, field, fast, batch_size, commit_every, ray_address, workers):
    """Embed every pair that has no vector yet for this model and field (resumable)."""
    from jobs.embed import embed as run_embed

    with ray_cluster(ray_address, workers) as cluster:
        with job_session(ctx, unit="pair", unit_scale=False) as (db, bar):
            report = run_embed(
                db,
                model=model,
                field=field,
                fast=fast,
                batch_size=batch_size,
                commit_every=commit_every,
                progress=bar,
                encoder=cluster.encoder(model, fast=fast) if cluster else None,
            )
    click.echo(
        f"embedded {report.embedded:,} pairs ({report.already:,} already had vectors) with "
        f"{report.model}, field {report.field}: {report.texts_per_s:,.0f} texts/s"
    )


@cli.command("map")
@click.option("--name", help="Map name (default: the field).")
@click.option(
    "--field", default="prompt", show_default=True, type=FIELD, help="prompt or response (twin maps), or pair."
)
@click.option("--model", help="Embedding model name or path (default: the bundled all-MiniLM-L6-v2).")
@click.option("--fast", is_flag=True, help="Use static model2vec embeddings: first looks at million-pair sets.")
@click.option("--seed", default=42, show_default=True, type=int, help="Seed: the same seed gives the same map.")
@click.option("--min-cluster-size", type=int, help="HDBSCAN's smallest cluster (default: chosen from the size).")
@click.option(
    "--fit-sample",
    default=projection.MapParams.fit_sample,
    show_default=True,
    type=click.IntRange(3),
    help="Fit UMAP on a seeded sample of this many points and place the rest with the fitted model.",
)
@click.option("--rebuild", is_flag=True, help="Fit again instead of placing new pairs on the existing map.")
@click.option("--default", "make_default", is_flag=True, help="Show this map's columns in pairs_view.")
@click.option(
    "--label-model",
    help="Also have this chat model name the clusters (OpenAI-compatible API; key from OPENAI_API_KEY).",
)
@click.option("--base-url", help="The API's base URL for --label-model (default: OpenAI's).")
@ray_options
@click.pass_context
def map_command(
    ctx,
    name,
    field,
    model,
    fast,
    seed,
    min_cluster_size,
    fit_sample,
    rebuild,
    make_default,
    label_model,
    base_url,
    ray_address,
    workers,
):
    """Embed what is missing, project to 2-D, cluster and label topics; later runs place new pairs.

    With --ray, the embedding and the placing of the points outside the fit sample run on the
    cluster (the same coordinates)."""
    from jobs.map import build_map

    params = projection.MapParams(seed=seed, min_cluster_size=min_cluster_size, fit_sample=fit_sample)
    with ray_cluster(ray_address, workers) as cluster:
        with job_session(ctx, unit="step", unit_scale=False) as (db, bar):
            report = build_map(
                db,
                name=name,
                field=field,
                model=model,
                fast=fast,
                params=params,
                rebuild=rebuild,
                make_default=make_default,
                label_model=label_model,
                base_url=base_url,
                progress=bar,
                cluster=cluster,
            )
    _print_map(report)


def _print_map(report: MapReport) -> None:
    click.echo(
        f"map {report.name}: {report.fitted:,} points fitted, {report.placed:,} placed without "
        f"refitting, {report.clusters:,} clusters, {report.noise:,} noise points ({report.model})"
    )


@cli.command()
@click.option("--map", "map_name", help="Map name (default: the default map).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def clusters(ctx, map_name, as_json):
    """Clusters of a map: id, topic label, parent (coarse) cluster, size, top sources."""

    def cluster_rows(con):
        chosen = map_rows.find(con, map_name) if map_name else map_rows.default(con)
        if chosen is None:
            raise click.ClickException(f"no map {map_name!r}" if map_name else "no map yet: run `curator map`")
        return map_rows.cluster_listing(con, chosen.id)

    rows = read(ctx, cluster_rows)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["level", "id", "label", "parent", "size", "top sources"],
        [(r["level"], r["id"], r["label"], r["parent"], f"{r['size']:,}", r["top_sources"]) for r in rows],
        max_width=70,
    )


def main() -> None:
    # numba (UMAP, HDBSCAN) compiles for ~30 s per process unless its cache persists (bench/map.py
    # runs each map in a fresh process).
    os.environ.setdefault("NUMBA_CACHE_DIR", str(projection.numba_cache_dir()))
    cli(prog_name="curator")
