"""`curator concept create|list|delete` (registered by cli/main.py through COMMANDS)."""

from __future__ import annotations

import re
from dataclasses import asdict
from pathlib import Path

import click
import numpy as np

import storage
from cli.common import database, read
from cli.output import print_json, print_table
from curator import embedding
from curator.selection import Selector, parse_id_list
from storage import concepts as concept_rows

_IDS = re.compile(r"\s*-?\d+(\s*,\s*-?\d+)*\s*")


def labelled_pairs(value: str) -> Selector:
    """SQL_OR_IDS: a file of pair ids, comma-separated ids, else a SQL condition over pairs_view."""
    if _IDS.fullmatch(value):
        return Selector(ids=np.asarray([int(v) for v in value.split(",")], dtype=np.int64))
    if Path(value).is_file():
        return Selector(ids=parse_id_list(Path(value).read_text(encoding="utf-8")))
    return Selector(where=value)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{value:.0%}"


@click.group()
def concept():
    """Concepts: a classifier over the stored embeddings, from labelled pairs (pairs_view: concept_NAME)."""


@concept.command("create")
@click.argument("name")
@click.option(
    "--positive",
    required=True,
    metavar="SQL_OR_IDS",
    help="The concept's examples: a SQL condition over pairs_view (run read-only, e.g. \"tag = 'x'\" "
    "or \"list_contains(tags, 'refusal')\"), comma-separated pair ids, or a file of ids.",
)
@click.option(
    "--negative",
    metavar="SQL_OR_IDS",
    help="Pairs that are not the concept, as --positive (default: a seeded random sample of the other "
    "pairs, 10 per positive, at least 200).",
)
@click.option(
    "--field", type=click.Choice(embedding.FIELDS), help="Classify this field's embeddings (default: those of the map)."
)
@click.option("--map", "map_name", help="Take the embeddings of this map (default: the default map).")
@click.option("--seed", type=int, default=42, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the report as a JSON object.")
@click.pass_context
def create(ctx, name, positive, negative, field, map_name, seed, as_json):
    """Fit concept NAME (lower-case letters, digits, _) on labelled pairs and score every pair:
    pairs_view gains concept_NAME, the probability that a pair belongs (0-1). Replaces a
    concept of the same name. Precision and recall are cross-validated on the labelled pairs."""
    from jobs.concepts import create as run_create

    report = run_create(
        storage.Database(database(ctx)),
        name,
        labelled_pairs(positive),
        labelled_pairs(negative) if negative else None,
        field=field,
        map_name=map_name,
        seed=seed,
    )
    if as_json:
        print_json(asdict(report))
        return
    negatives = f"{report.negatives:,} {'random ' if report.random_negatives else ''}negatives"
    click.echo(
        f"concept {report.name}: {report.positives:,} positives, {negatives} ({report.field} vectors of "
        f"{report.model}); cross-validated over {report.folds} folds: precision "
        f"{_percent(report.cv_precision)}, recall {_percent(report.cv_recall)}"
    )
    click.echo(
        f"{report.members:,} of {report.scored:,} pairs score >= {report.threshold:g} "
        f'(column concept_{report.name}; e.g. --where "concept_{report.name} >= 0.9")'
    )
    if report.missing:
        click.echo(
            f"warning: {report.missing:,} labelled pairs have no vector and were left out "
            "(`curator embed` gives them one)",
            err=True,
        )


@concept.command("list")
@click.option("--json", "as_json", is_flag=True)
@click.pass_context
def list_concepts(ctx, as_json):
    """Every concept: its labels, cross-validated precision and recall, and members."""
    rows = read(ctx, concept_rows.listing)
    if as_json:
        print_json(rows)
        return
    print_table(
        ["concept", "field", "positives", "negatives", "precision", "recall", "members", "scored"],
        [
            (
                r["name"],
                r["field"],
                f"{r['positives']:,}",
                f"{r['negatives']:,}",
                _percent(r["cv_precision"]),
                _percent(r["cv_recall"]),
                f"{r['members']:,}",
                f"{r['scored']:,}",
            )
            for r in rows
        ],
    )


@concept.command("delete")
@click.argument("name")
@click.pass_context
def delete(ctx, name):
    """Remove a concept and its column (labels and scores go with it)."""
    with storage.Database(database(ctx)).writing() as con:
        found = concept_rows.delete(con, name)
    if not found:
        raise click.ClickException(f"no concept {name!r} (`curator concept list` shows them)")
    click.echo(f"concept {name} deleted")


COMMANDS = [concept]
