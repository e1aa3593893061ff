"""`curator compare` (registered by cli/main.py through COMMANDS): does a curated version train
a better model? Torch and the trainer load only when it runs."""

from __future__ import annotations

from pathlib import Path

import click

import storage
from cli.common import database
from cli.output import StageBars, print_json, print_table


@click.command()
@click.argument("version_a")
@click.argument("version_b")
@click.option(
    "--steps",
    type=int,
    default=40,
    show_default=True,
    help="LoRA steps of every run (the same recipe, seed and steps for each model).",
)
@click.option(
    "--same-size",
    is_flag=True,
    help="Also train on a seeded random subset of A as large as B's training file: the control that "
    "separates less data from better data.",
)
@click.option(
    "--eval-set",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Evaluation set (default: the Self-Instruct 252 of $CURATOR_EVAL_SET or the cache, as for `curator export`).",
)
@click.option("--eval-limit", type=int, help="Score only the first N examples of each set (default: all).")
@click.option("--max-length", type=int, default=512, show_default=True, help="Training tokens per example.")
@click.option(
    "--out", type=click.Path(file_okay=False, path_type=Path), help="Output directory (default: runs/compare-A-vs-B)."
)
@click.option(
    "--seed", type=int, default=42, show_default=True, help="Seed of the split, the control's draw and every run."
)
@click.option("--json", "as_json", is_flag=True, help="Print compare.json (stage lines are left out).")
@click.pass_context
def compare(ctx, version_a, version_b, steps, same_size, eval_set, eval_limit, max_length, out, seed, as_json):
    """Train the same LoRA recipe on VERSION_A and VERSION_B and score each model against the base.

    VERSION_A and VERSION_B are `curator version create` names, or @all (every pair ever
    ingested, deleted ones too) or @live (the pairs not deleted now). Reruns skip finished stages.
    """
    from jobs.compare import CompareOptions, default_out
    from jobs.compare import compare as run_compare

    options = CompareOptions(
        steps=steps, same_size=same_size, eval_set=eval_set, eval_limit=eval_limit, max_length=max_length, seed=seed
    )
    bars = StageBars()
    try:
        report = run_compare(
            storage.Database(database(ctx)),
            version_a,
            version_b,
            out or default_out(version_a, version_b),
            options,
            progress=bars,
            notify=None if as_json else bars.stage,
        )
    finally:
        bars.bar.close()
    result = report.result
    if as_json:
        print_json(result)
        return
    names = result["set_names"]
    click.echo("\nresponse perplexity (token-weighted; gain: share of the base's perplexity removed)")
    print_table(
        [
            "model",
            "training pairs",
            "steps",
            "tokens seen",
            f"{names['eval']} ppl",
            "gain",
            f"{names['heldout']} ppl",
            "gain",
        ],
        [
            (
                r["model"],
                "" if r["pairs"] is None else f"{r['pairs']:,}",
                r["steps"],
                f"{r['tokens']:,}",
                f"{r['eval_ppl']:.3f}",
                f"{r['eval_gain']:+.1%}",
                f"{r['heldout_ppl']:.3f}",
                f"{r['heldout_gain']:+.1%}",
            )
            for r in result["rows"]
        ],
    )
    click.echo("")
    for line in result["verdicts"]:
        click.echo(line)
    click.echo(f"\n{report.directory}/compare.json, compare.png")


COMMANDS = [compare]
