"""`curator` commands for operations (registered by cli/main.py through COMMANDS):
tag, untag, delete, restore (each with one selector), log, undo, replay, version."""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

import click

from cli.common import database, read
from cli.output import print_json, print_table
from curator.selection import LEVELS, Selector, parse_id_list
from jobs import operations
from storage import versions as version_rows
from storage.operations import Operation

SHOWN_CLUSTERS = 20


def selector_options(command):
    """The selector options (exactly one of them), --map/--level/--top, --dry-run and --json."""
    options = [
        click.option("--where", help='SQL boolean expression over pairs_view, run read-only (e.g. "refusal").'),
        click.option("--cluster", type=int, help="A cluster of the map (`curator clusters` lists them)."),
        click.option(
            "--level",
            type=click.Choice(LEVELS),
            default="fine",
            show_default=True,
            help="With --cluster: a fine cluster or a coarse one (all its fine clusters).",
        ),
        click.option("--source", help="Every pair of this source."),
        click.option("--tag", "with_tag", help="Every pair carrying this tag."),
        click.option(
            "--ids",
            "ids_file",
            type=click.Path(dir_okay=False, exists=True, path_type=Path),
            help="File of pair ids: one per line, or a JSON array.",
        ),
        click.option("--polygon", help="JSON list of [x, y] points in the map's coordinates (a lasso or box)."),
        click.option("--similar-to", help="The --top pairs nearest to this text under the map's embedding model."),
        click.option("--top", type=int, help="With --similar-to: how many pairs."),
        click.option(
            "--map", "map_name", help="Map for --cluster, --polygon and --similar-to (default: the default map)."
        ),
        click.option("--dry-run", is_flag=True, help="Print what would change, by source and cluster; change nothing."),
        click.option("--json", "as_json", is_flag=True, help="Print the operation (or the dry run) as JSON."),
    ]
    for option in reversed(options):
        command = option(command)
    return command


def _selector(where, cluster, level, source, with_tag, ids_file, polygon, similar_to, top, map_name) -> Selector:
    if polygon is not None:
        try:
            polygon = json.loads(polygon)
        except json.JSONDecodeError as err:
            raise click.BadParameter(f"not JSON: {err}", param_hint="--polygon") from None
    ids = parse_id_list(ids_file.read_text(encoding="utf-8")) if ids_file else None
    return Selector(
        where=where,
        cluster=cluster,
        level=level,
        source=source,
        tag=with_tag,
        ids=ids,
        polygon=polygon,
        similar_to=similar_to,
        top=top,
        map=map_name,
    )


def _run(ctx, kind: str, tag: str | None, reason: str | None, dry_run: bool, as_json: bool, chosen: dict) -> None:
    selector = _selector(**chosen)
    if dry_run:
        result = operations.preview(database(ctx), kind, selector, tag)
        if as_json:
            print_json(result)
            return
        click.echo(
            f"dry run: {kind}{' ' + tag if tag else ''} would change {result['would_change']:,} of "
            f"{result['selected']:,} selected pairs; nothing was changed"
        )
        if result["by_source"]:
            print_table(["source", "pairs"], [(r["source"], f"{r['pairs']:,}") for r in result["by_source"]])
        if result["by_cluster"]:
            click.echo("")
            print_table(
                ["cluster", "topic", "pairs"],
                [(r["cluster"], r["topic"], f"{r['pairs']:,}") for r in result["by_cluster"][:SHOWN_CLUSTERS]],
            )
        return
    op = operations.apply(database(ctx), kind, selector, tag=tag, reason=reason)
    if as_json:
        print_json(asdict(op))
    else:
        done = {"tag": f"tagged {tag!r}", "untag": f"untagged {tag!r}", "delete": "deleted", "restore": "restored"}
        click.echo(f"operation {op.id}: {op.count:,} pairs {done[kind]} (`curator undo {op.id}` reverts it)")


@click.command()
@click.argument("name")
@selector_options
@click.pass_context
def tag(ctx, name, dry_run, as_json, **chosen):
    """Tag the selected pairs NAME (pairs_view.tags shows it)."""
    _run(ctx, "tag", name, None, dry_run, as_json, chosen)


@click.command()
@click.argument("name")
@selector_options
@click.pass_context
def untag(ctx, name, dry_run, as_json, **chosen):
    """Remove tag NAME from the selected pairs."""
    _run(ctx, "untag", name, None, dry_run, as_json, chosen)


@click.command()
@click.option("--reason", help="Why: kept in the operations log.")
@selector_options
@click.pass_context
def delete(ctx, reason, dry_run, as_json, **chosen):
    """Soft-delete the selected pairs (undo or restore brings them back)."""
    _run(ctx, "delete", None, reason, dry_run, as_json, chosen)


@click.command()
@selector_options
@click.pass_context
def restore(ctx, dry_run, as_json, **chosen):
    """Bring back the selected pairs that are deleted."""
    _run(ctx, "restore", None, None, dry_run, as_json, chosen)


def _undo_note(op: dict) -> str:
    if op["undone_by"] is not None:
        return f"undone by {op['undone_by']}"
    return f"undoes {op['undoes']}" if op["undoes"] is not None else ""


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.option(
    "--export",
    "export_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write the log as JSON Lines with each operation's changed pair ids (for `curator replay`).",
)
@click.pass_context
def log(ctx, as_json, export_path):
    """The operations log: id, time, kind, selector, tag, reason, pairs changed, undo links."""
    if export_path is not None:
        written = operations.export_log(database(ctx), export_path)
        click.echo(f"wrote {written:,} operation(s) to {export_path}")
        return
    rows = operations.log(database(ctx))
    if as_json:
        print_json(rows)
        return
    print_table(
        ["id", "time", "kind", "selector", "tag", "reason", "count", "undo"],
        [
            (
                r["id"],
                r["time"].strftime("%Y-%m-%d %H:%M:%S"),
                r["kind"],
                r["selector"],
                r["tag"],
                r["reason"],
                f"{r['count']:,}",
                _undo_note(r),
            )
            for r in rows
        ],
        max_width=60,
    )


@click.command()
@click.argument("op_id", type=int, required=False)
@click.option("--json", "as_json", is_flag=True, help="Print the undo operation as JSON.")
@click.pass_context
def undo(ctx, op_id, as_json):
    """Revert operation OP_ID (default: the latest one not undone); logged as an undo."""
    op: Operation = operations.undo(database(ctx), op_id)
    if as_json:
        print_json(asdict(op))
    else:
        click.echo(f"operation {op.id}: undid operation {op.undoes}, {op.count:,} pairs put back as they were")


@click.command()
@click.argument("path", type=click.Path(dir_okay=False, exists=True, path_type=Path))
@click.option("--json", "as_json", is_flag=True, help="Print each replayed operation as JSON.")
@click.pass_context
def replay(ctx, path, as_json):
    """Apply an exported operations log (`curator log --export`) to this database."""
    report = operations.replay(database(ctx), path)
    if as_json:
        print_json(report.steps)
        return
    for step in report.mismatches:
        click.echo(
            f"warning: operation {step['from']} ({step['kind']}) changed {step['logged']:,} pairs where it "
            f"was logged and {step['changed']:,} here (as operation {step['to']})",
            err=True,
        )
    first, last = (report.steps[0]["to"], report.steps[-1]["to"]) if report.steps else (None, None)
    click.echo(
        f"replayed {len(report.steps):,} operation(s) from {path}"
        + (f" as operation(s) {first}-{last}" if report.steps else "")
    )


@click.group()
def version():
    """Named dataset versions: snapshots of the kept pairs."""


@version.command("create")
@click.argument("name")
@click.option("--note", help="What this version is (kept with it).")
@click.pass_context
def version_create(ctx, name, note):
    """Snapshot the pairs kept now (not deleted) as version NAME."""
    made = operations.create_version(database(ctx), name, note)
    upto = f"operations up to {made['op_id']}" if made["op_id"] is not None else "no operations yet"
    click.echo(f"version {made['name']}: {made['pairs']:,} pairs ({upto})")


@version.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON array.")
@click.pass_context
def version_list(ctx, as_json):
    """Versions, oldest first: name, pairs kept, last operation included, time, note."""
    rows = read(ctx, version_rows.listing)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["id", "name", "pairs", "last op", "created", "note"],
        [
            (
                r["id"],
                r["name"],
                f"{r['pairs']:,}",
                r["op_id"],
                r["created_at"].strftime("%Y-%m-%d %H:%M:%S"),
                r["note"],
            )
            for r in rows
        ],
    )


@version.command("diff")
@click.argument("a")
@click.argument("b")
@click.option("--map", "map_name", help="Count by the clusters of this map (default: the default map).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def version_diff(ctx, a, b, map_name, as_json):
    """What version B added and removed relative to A, by source and by cluster."""
    result = operations.diff_versions(database(ctx), a, b, map_name)
    if as_json:
        print_json(result)
        return
    click.echo(
        f"{a} -> {b}: {result['pairs_from']:,} -> {result['pairs_to']:,} pairs "
        f"(+{result['added']:,} added, -{result['removed']:,} removed)"
    )
    columns = [a, b, "added", "removed"]
    print_table(
        ["source", *columns],
        [(r["source"], *(f"{r[k]:,}" for k in ("a", "b", "added", "removed"))) for r in result["by_source"]],
    )
    if result["by_cluster"]:
        click.echo(
            f"\nclusters of map {result['map']} that changed (largest change first, "
            f"{min(SHOWN_CLUSTERS, len(result['by_cluster']))} of {len(result['by_cluster'])}):"
        )
        print_table(
            ["cluster", "topic", *columns],
            [
                (
                    "unmapped" if r["cluster"] is None else r["cluster"],
                    r["topic"],
                    *(f"{r[k]:,}" for k in ("a", "b", "added", "removed")),
                )
                for r in result["by_cluster"][:SHOWN_CLUSTERS]
            ],
        )


COMMANDS: list = [tag, untag, delete, restore, log, undo, replay, version]
