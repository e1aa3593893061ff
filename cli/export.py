"""`curator` commands for export (registered by cli/main.py through COMMANDS)."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import job_session
from cli.output import print_json
from curator import training_set
from jobs.contamination import DEFAULT_THRESHOLD
from jobs.export import ExportOptions
from jobs.export import export as run_export


@click.command("export")
@click.argument("directory", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    default="gpt4all",
    show_default=True,
    type=click.Choice(training_set.FORMATS),
    help="Record format of train.jsonl / val.jsonl.",
)
@click.option("--version", "version", help="Export exactly this version's pairs (default: every pair not deleted).")
@click.option(
    "--val-fraction",
    default=0.05,
    show_default=True,
    type=float,
    help="Share of pairs in val.jsonl (0: no validation file).",
)
@click.option("--seed", default=42, show_default=True, type=int, help="Order and split seed.")
@click.option(
    "--eval-set",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Drop pairs whose prompt near-duplicates a prompt of this file (default: "
    "$CURATOR_EVAL_SET or the cached Self-Instruct tasks; `self-instruct` downloads "
    "those 252 user-oriented tasks once).",
)
@click.option(
    "--eval-threshold",
    default=DEFAULT_THRESHOLD,
    show_default=True,
    type=float,
    help="Cosine similarity from which a prompt counts as a near-duplicate of an eval prompt.",
)
@click.option("--no-eval-check", is_flag=True, help="Do not check against any evaluation set.")
@click.option("--json", "as_json", is_flag=True, help="Print the manifest as JSON.")
@click.pass_context
def export_command(ctx, directory, fmt, version, val_fraction, seed, eval_set, eval_threshold, no_eval_check, as_json):
    """Write DIR/train.jsonl, DIR/val.jsonl and DIR/manifest.json: reproducible, leak-free."""
    if eval_set is not None and no_eval_check:
        raise click.UsageError("--eval-set and --no-eval-check contradict each other")
    options = ExportOptions(
        format=fmt,
        version=version,
        val_fraction=val_fraction,
        seed=seed,
        eval_set=eval_set,
        eval_check=not no_eval_check,
        eval_threshold=eval_threshold,
    )
    with job_session(ctx, unit="pair", unit_scale=False) as (db, bar):
        report = run_export(db, directory, options, progress=bar)
    manifest = report.manifest
    if as_json:
        print_json(manifest)
        return
    pairs = manifest["pairs"]
    files = ", ".join(f"{name} {info['records']:,}" for name, info in manifest["files"].items())
    click.echo(
        f"exported {pairs['exported']:,} pairs to {directory} ({fmt}"
        + (f", version {version}" if version else "")
        + f"): {files}"
    )
    if pairs["conversations_flattened"]:
        click.echo(
            f"{pairs['conversations_flattened']:,} multi-turn conversations flattened to their last "
            f"exchange ({fmt} holds one exchange; sharegpt and openai keep them whole)"
        )
    if not no_eval_check:
        _print_eval_check(manifest["eval_check"])
    click.echo(f"manifest {directory / 'manifest.json'}")


def _print_eval_check(check: dict) -> None:
    if not check["checked"]:
        click.echo(f"eval check: NOT DONE: {check['reason']}", err=True)
        return
    click.echo(
        f"eval check ({check['set']['name']}, {check['set']['prompts']:,} prompts, cosine >= "
        f"{check['threshold']}): removed {check['removed']:,} pairs ({check['removed_exact']:,} exact, "
        f"{check['removed_semantic']:,} semantic)"
    )
    compared = check["compared"]
    if compared["without_vectors"]:
        click.echo(
            f"  {compared['without_vectors']:,} pairs have no stored prompt vector: only the "
            f"{compared['first_pass_candidates_embedded']:,} sharing an eval prompt's beginning or end "
            "were compared semantically (`curator embed --field prompt` for a full check)"
        )
    for example in check["examples"]:
        click.echo(
            f"  pair {example['pair_id']} ({example['match']}, {example['similarity']}): "
            f"{_one_line(example['prompt'])!r} ~ {_one_line(example['eval_prompt'])!r}"
        )


def _one_line(text: str, limit: int = 70) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


COMMANDS: list = [export_command]
