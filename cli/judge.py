"""`curator quality judge`: a 1-5 rating and a one-line reason per pair from an LLM judge
(added to the `quality` group by cli/quality.py)."""

from __future__ import annotations

from pathlib import Path

import click

from cli.distill import price_table, request_options, retry_policy, run_and_report
from curator import judge as judging
from jobs import judge as judge_job
from jobs.judge import JudgeOptions, JudgeReport

_FAILED_ERRORS = (
    'curator sql "SELECT j.pair_id, j.error FROM judge_scores j JOIN quality_runs r ON r.id = j.run_id '
    "WHERE j.status = 'failed' ORDER BY r.id DESC\""
)


@click.command("judge")
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
