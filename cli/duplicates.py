"""`curator duplicates` and `curator blobs` (registered by cli/main.py through COMMANDS)."""

from __future__ import annotations

from dataclasses import asdict

import click

from cli.common import job_session, ray_cluster, ray_options
from cli.output import print_json, print_table
from curator.duplicates import DuplicateParams
from jobs.blobs import blob_report
from jobs.duplicates import find_duplicates
from storage import duplicates as dup_rows

_UNIT = click.FloatRange(0, 1, min_open=True)


@click.command()
@click.option(
    "--threshold",
    default=DuplicateParams.threshold,
    show_default=True,
    type=_UNIT,
    help="Cosine of the map's vectors at or above which two texts are near-identical.",
)
@click.option(
    "--text-threshold",
    default=DuplicateParams.text_threshold,
    show_default=True,
    type=_UNIT,
    help="Word-set Jaccard at or above which two texts are near-identical, for a side with no vectors "
    "(the responses, on a prompt map).",
)
@click.option(
    "--diverge-below",
    default=DuplicateParams.diverge_below,
    show_default=True,
    type=_UNIT,
    help="Cosine under which two answers to a near-identical prompt conflict.",
)
@click.option(
    "--text-diverge-below",
    default=DuplicateParams.text_diverge_below,
    show_default=True,
    type=_UNIT,
    help="Word-set Jaccard under which two answers conflict, when the responses have no vectors.",
)
@click.option(
    "--neighbours",
    default=DuplicateParams.neighbours,
    show_default=True,
    type=click.IntRange(1),
    help="Near-identical partners kept per pair in the k-NN search (bounds memory).",
)
@click.option("--map", "map_name", help="Map whose vectors are compared (default: the default map).")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@ray_options
@click.pass_context
def duplicates(
    ctx,
    threshold,
    text_threshold,
    diverge_below,
    text_diverge_below,
    neighbours,
    map_name,
    as_json,
    ray_address,
    workers,
):
    """Find exact and semantic duplicate sets, keep the best member of each, flag conflicting answers.

    Fills pairs_view's dup_group, dup_kind, dup_keep and conflict; a rerun replaces the previous
    result. To drop the extra copies: curator delete --where "dup_group IS NOT NULL AND NOT dup_keep"."""
    params = DuplicateParams(threshold, text_threshold, diverge_below, text_diverge_below, neighbours)
    with ray_cluster(ray_address, workers) as cluster:
        with job_session(ctx, unit="", unit_scale=False) as (db, bar):
            report = find_duplicates(db, map_name=map_name, params=params, progress=bar, cluster=cluster)
            with db.reading() as con:
                summary = dup_rows.summary(con)
    if as_json:
        print_json({**asdict(report), "params": summary["params"], "largest_groups": summary["largest_groups"]})
        return
    click.echo(
        f"duplicates on map {report.map} ({report.field}), threshold {threshold}: "
        f"{report.exact_groups:,} exact sets, {report.semantic_groups:,} semantic sets, "
        f"{report.pairs_in_groups:,} pairs in them, {report.not_kept:,} not kept; "
        f"{report.conflicts:,} conflicting pairs ({report.pairs:,} pairs, {report.seconds:.1f} s)"
    )
    if report.without_vectors:
        click.echo(
            f"note: {report.without_vectors:,} pairs have no vector on map {report.map} "
            "(run `curator map` to place them); only exact matches were checked for them",
            err=True,
        )
    if summary["largest_groups"]:
        print_table(
            ["group", "kind", "size", "kept", "prompt"],
            [(g["group"], g["kind"], g["size"], g["keep_id"], g["prompt"]) for g in summary["largest_groups"]],
        )


@click.command()
@click.option("--map", "map_name", help="Map whose clusters are ranked (default: the default map).")
@click.option(
    "--level",
    type=click.Choice(["all", "fine", "coarse"]),
    default="all",
    show_default=True,
    help="Which clusters to rank beside the sources: coarse finds a family (a dataset's templates) whole.",
)
@click.option("--limit", type=click.IntRange(1), help="Show only the worst N.")
@click.option(
    "--json",
    "as_json",
    is_flag=True,
    help="Print a JSON array, worst first, of {kind, id|name, label, size, score, reasons, metrics, parts}.",
)
@click.pass_context
def blobs(ctx, map_name, level, limit, as_json):
    """Rank clusters and sources by how homogeneous and harmful they look, worst first.

    Coarse clusters are ranked beside the fine ones and list their fine parts: a family deleted
    as one (a dataset's templates, a set of canned answers) is found whole."""
    with job_session(ctx, unit="", unit_scale=False) as (db, bar):
        ranked = blob_report(db, map_name=map_name, progress=bar)
    left_out = {"fine": "coarse", "coarse": "cluster"}.get(level)
    ranked = [entry for entry in ranked if entry["kind"] != left_out]
    ranked = ranked[:limit] if limit else ranked
    if as_json:
        print_json(ranked)
        return
    print_table(
        ["kind", "cluster/source", "label", "size", "score", "parts", "reasons"],
        [
            (
                b["kind"],
                b.get("id", b.get("name")),
                b["label"],
                f"{b['size']:,}",
                f"{b['score']:.2f}",
                "" if "parts" not in b else ", ".join(str(part["id"]) for part in b["parts"]),
                "; ".join(b["reasons"]),
            )
            for b in ranked
        ],
        max_width=70,
    )


COMMANDS = [duplicates, blobs]
