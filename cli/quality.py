"""`curator quality ifd` and `curator quality judge` (registered by cli/main.py through COMMANDS).

Model-based quality scores per pair, beside the rule signals: instruction-following difficulty
under a small local model, and a 1-5 rating by an LLM judge over any OpenAI-compatible API.
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import job_session, price_table, request_options, retry_policy, run_and_report
from cli.output import print_json, print_table
from curator import judge as judging
from jobs import judge as judge_job
from jobs.judge import JudgeOptions, JudgeReport


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


_FAILED_ERRORS = (
    'curator sql "SELECT j.pair_id, j.error FROM judge_scores j JOIN quality_runs r ON r.id = j.run_id '
    "WHERE j.status = 'failed' ORDER BY r.id DESC\""
)


@quality.command("judge")
@request_options("pair")
@click.option(
    "--rubric",
    type=click.Path(exists=True, dir_okay=False),
    help="A text file that replaces the default rubric: the whole message sent, with {prompt} and "
    "{response} where the pair's texts go; the judge must answer 'Score: N' (1-5), then "
    "'Reason: ...'.",
)
@click.option(
    "--max-tokens",
    default=JudgeOptions.max_tokens,
    show_default=True,
    type=click.IntRange(min=1),
    help="Longest verdict.",
)
@click.option("--temperature", default=JudgeOptions.temperature, show_default=True, type=float)
@click.option("--limit", type=click.IntRange(min=1), help="Judge at most this many pairs now (a rerun continues).")
@click.option("--json", "as_json", is_flag=True, help="Print the report as a JSON object.")
@click.pass_context
def judge(
    ctx,
    model,
    base_url,
    concurrency,
    timeout,
    max_tries,
    backoff,
    prices,
    rubric,
    max_tokens,
    temperature,
    limit,
    as_json,
):
    """Rate every pair (not deleted) from 1 to 5, with a one-line reason, by an LLM judge behind
    any OpenAI-compatible API; resumable, exactly once. pairs_view: judge_score, judge_reason
    (of the latest judge run).

    The default rubric (after AlpaGasus) asks how accurate and helpful the response is as an
    answer to the instruction. A run is its model, rubric, max tokens and temperature:
    rerunning the same command scores only pairs without a stored score (failed ones and
    pairs added since included). OPENAI_API_KEY is read from the environment, never stored."""
    options = JudgeOptions(
        model=model,
        base_url=base_url,
        concurrency=concurrency,
        timeout=timeout,
        policy=retry_policy(max_tries, backoff),
        max_tokens=max_tokens,
        temperature=temperature,
        rubric=Path(rubric).read_text(encoding="utf-8") if rubric else judging.DEFAULT_RUBRIC,
        limit=limit,
    )
    report = run_and_report(
        ctx,
        "pair",
        lambda db, bar: judge_job.judge(db, options, prices=price_table(prices), progress=bar),
        as_json,
        _print_report,
    )
    if report.judged == 0 and report.failed:
        raise click.ClickException(f"no pair was judged: {report.failed:,} failed; their errors: {_FAILED_ERRORS}")


def _print_report(r: JudgeReport) -> None:
    if r.status == "nothing to do":
        click.echo(f"judge run {r.run_id} ({r.model}): all {r.pairs:,} pairs already scored, nothing to do")
    else:
        cost = "spend unknown (no price for this model)" if r.cost is None else f"${r.cost:,.4f}"
        click.echo(
            f"judge run {r.run_id} ({r.model}, {r.status}): {r.pairs:,} pairs: {r.judged:,} judged now, "
            f"{r.already:,} before, {r.failed:,} failed, {r.pending:,} left"
        )
        click.echo(
            f"job {r.job_id}: {r.errors:,} failed requests or unreadable verdicts retried or given up, "
            f"tokens {r.prompt_tokens:,} in / {r.completion_tokens:,} out, {cost}, {r.seconds:,.1f} s"
        )
    if r.mean_score is not None:
        bars = "  ".join(f"{score}: {n:,}" for score, n in r.histogram.items())
        click.echo(f"scores: mean {r.mean_score:.2f}; {bars}")
    if r.failed:
        click.echo(
            f"warning: {r.failed:,} pair(s) failed; rerun the same command to retry them. Errors: {_FAILED_ERRORS}",
            err=True,
        )


COMMANDS = [quality]
