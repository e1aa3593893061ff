"""`curator quality ifd` and `curator quality judge` (registered by cli/main.py through COMMANDS).

Model-based quality scores per pair, beside the rule signals: instruction-following difficulty
under a small local model, and a 1-5 rating by an LLM judge over any OpenAI-compatible API.
"""

from __future__ import annotations

import click

from cli.common import job_session
from cli.output import print_json, print_table


@click.group()
def quality():
    """Model-based quality scores per pair (pairs_view: ifd, judge_score)."""


@quality.command("ifd")
@click.option(
    "--model",
    help="A Hugging Face name or directory, a `curator train` run, or a .gguf file "
    "(default: the bundled SmolLM2-135M-Instruct).",
)
@click.option(
    "--max-length",
    type=int,
    default=512,
    show_default=True,
    help="Tokens per sequence; longer pairs are scored on what fits.",
)
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--limit", type=int, help="Score at most this many pairs now (a rerun continues).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as a JSON object.")
@click.pass_context
def ifd(ctx, model, max_length, batch_size, limit, as_json):
    """Instruction-following difficulty of every pair not deleted: the response's loss given its
    prompt over its loss alone (Cherry LLM). Far below 1: the prompt all but dictates the answer
    (extracted spans, label words); near or above 1: it hardly helps. Resumable: a rerun with the
    same model and --max-length scores only the pairs not scored yet."""
    from jobs.quality import ifd as run_ifd

    with job_session(ctx, unit="pair", unit_scale=False) as (db, bar):
        report = run_ifd(db, model=model, max_length=max_length, batch_size=batch_size, limit=limit, progress=bar)
    if as_json:
        print_json(report.as_dict())
        return
    click.echo(
        f"IFD run {report.run_id} ({report.model}): {report.scored:,} pairs scored now, "
        f"{report.already:,} before, {report.left:,} left; {report.pairs_per_s:,.1f} pairs/s"
    )
    print_table(
        ["source", "pairs", "IFD mean", "IFD median", "loss | prompt", "loss alone"],
        [
            (
                s["source"],
                f"{s['pairs']:,}",
                f"{s['ifd_mean']:.3f}",
                f"{s['ifd_median']:.3f}",
                f"{s['loss_given_prompt']:.3f}",
                f"{s['loss_alone']:.3f}",
            )
            for s in report.by_source
        ],
    )


from cli.judge import judge  # noqa: E402

quality.add_command(judge)

COMMANDS = [quality]
