"""`curator distill`, `curator cost`, `curator prompts template` (registered through COMMANDS)."""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import price_table, read, request_options, retry_policy, run_and_report
from cli.output import print_json, print_table
from curator import distill
from jobs.distill import DistillOptions, DistillReport, distill_prompts
from storage import distill as distill_rows
from storage import judge as judge_rows


@click.command("distill")
@click.argument("prompts", required=False, type=click.Path(path_type=str))
@click.option("--from-source", help="Answer the prompts of this source's pairs instead (both answers are kept).")
@request_options("prompt")
@click.option("--system", help="System message sent before every prompt.")
@click.option(
    "--max-tokens",
    default=512,
    show_default=True,
    type=click.IntRange(min=1),
    help="Longest answer; answers cut here get finish_reason 'length'.",
)
@click.option("--temperature", default=0.7, show_default=True, type=float)
@click.option("--source", help="Source name of the new pairs (default: PROMPTS-stem:MODEL or NAME:MODEL).")
@click.option("--prompt-field", help="Read any flat records: the key holding the prompt.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as a JSON object.")
@click.pass_context
def distill_command(
    ctx,
    prompts,
    from_source,
    model,
    base_url,
    concurrency,
    timeout,
    max_tries,
    backoff,
    prices,
    system,
    max_tokens,
    temperature,
    source,
    prompt_field,
    as_json,
):
    """Answer prompts with a model through an OpenAI-compatible API; resumable, exactly once.

    PROMPTS: a .txt file (one prompt per line) or any file `ingest` reads: its records'
    prompts, answered or not; conversations are asked at their last user turn. Rerunning the
    same command resumes: prompts whose answers are stored are never asked again; failed ones
    are retried. OPENAI_API_KEY is read from the environment, never stored."""
    options = DistillOptions(
        model=model,
        base_url=base_url,
        system=system,
        max_tokens=max_tokens,
        temperature=temperature,
        source=source,
        concurrency=concurrency,
        timeout=timeout,
        policy=retry_policy(max_tries, backoff),
        prompt_field=prompt_field,
    )
    report = run_and_report(
        ctx,
        "prompt",
        lambda db, bar: distill_prompts(
            db, prompts, options, from_source=from_source, prices=price_table(prices), progress=bar
        ),
        as_json,
        lambda r: _print_report(prompts or f"source {from_source}", r),
    )
    if report.answered == 0 and report.failed:
        raise click.ClickException(
            f"no prompt was answered: {report.failed:,} failed; their errors: "
            "curator sql \"SELECT line, error FROM distill_prompts WHERE status = 'failed'\""
        )


def _print_report(what: str, r: DistillReport) -> None:
    if r.status == "nothing to do":
        click.echo(
            f"{what}: all {r.prompts:,} prompts already answered by {r.model} (source {r.source}), nothing to do"
        )
        return
    rate = r.answered / r.seconds if r.seconds else 0.0
    cost = "spend unknown (no price for this model)" if r.cost is None else f"${r.cost:,.4f}"
    click.echo(
        f"{what} -> {r.model} (source {r.source}, {r.status}): {r.prompts:,} prompts: "
        f"{r.answered:,} answered now, {r.already:,} before, {r.failed:,} failed, {r.pending:,} left"
    )
    click.echo(
        f"job {r.job_id}: {r.errors:,} failed requests retried or given up, {r.truncated:,} answers cut "
        f"at max tokens, tokens {r.prompt_tokens:,} in / {r.completion_tokens:,} out, {cost}, "
        f"{r.seconds:,.1f} s ({rate:,.2f} answers/s)"
    )
    if r.rejects:
        click.echo(
            f"warning: {r.rejects:,} record(s) hold no prompt; `curator rejects --job {r.job_id}` lists them", err=True
        )
    if r.failed:
        click.echo(
            f"warning: {r.failed:,} prompt(s) failed; rerun the same command to retry them. Errors: "
            "curator sql \"SELECT line, error FROM distill_prompts WHERE status = 'failed'\"",
            err=True,
        )


def _usage(con) -> list[dict]:
    """Usage rows of every kind of work that calls an API, each marked with its `task`."""
    return [
        *({"task": "distill", **row} for row in distill_rows.usage(con)),
        *({"task": "judge", **row} for row in judge_rows.usage(con)),
    ]


@click.command("cost")
@click.option(
    "--prices",
    type=click.Path(exists=True, dir_okay=False),
    help='JSON {"model": {"input": USD per 1M tokens, "output": ...}} (default: example OpenAI prices).',
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def cost(ctx, prices, as_json):
    """Tokens of every distilled answer and judge verdict per model, priced; models served on
    this machine cost 0."""
    rows = distill.price_usage(read(ctx, _usage), price_table(prices))
    unpriced = list(dict.fromkeys(r["model"] for r in rows if r["priced"] == "unknown"))
    totals = {k: sum(r[k] for r in rows) for k in ("answers", "prompt_tokens", "completion_tokens")}
    total_cost = None if unpriced else sum(r["cost"] for r in rows)
    if as_json:
        print_json({"models": rows, **totals, "cost": total_cost, "unpriced": unpriced})
        return
    money = lambda v: "?" if v is None else f"${v:,.4f}"  # noqa: E731
    per_m = lambda v: "?" if v is None else f"{v:g}"  # noqa: E731
    print_table(
        ["model", "task", "server", "answers", "prompt tokens", "completion tokens", "$/1M in", "$/1M out", "cost"],
        [
            (
                r["model"],
                r["task"],
                "local" if r["local"] else "remote",
                f"{r['answers']:,}",
                f"{r['prompt_tokens']:,}",
                f"{r['completion_tokens']:,}",
                per_m(r["input_price"]),
                per_m(r["output_price"]),
                money(r["cost"]),
            )
            for r in rows
        ],
    )
    click.echo(
        f"total: {totals['answers']:,} answers, {totals['prompt_tokens']:,} + {totals['completion_tokens']:,} "
        f"tokens, {money(total_cost)}"
    )
    if unpriced:
        click.echo(f"warning: no price for {', '.join(unpriced)}: pass --prices FILE", err=True)


@click.group("prompts")
def prompts() -> None:
    """Build prompt lists for `curator distill`."""


def _named_values(pairs: tuple[str, ...], option: str, read_file: bool) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise click.BadParameter(f"expected NAME=..., got {pair!r}", param_hint=option)
        if read_file:
            items = [line.strip() for line in Path(value).read_text(encoding="utf-8").splitlines()]
        else:
            items = [item.strip() for item in value.split(",")]
        values.setdefault(name.strip().upper(), []).extend(item for item in items if item)
    return values


@prompts.command("template")
@click.argument("template", default=distill.GPT4ALL_J_TEMPLATE)
@click.option("--list", "lists", multiple=True, metavar="NAME=FILE", help="Values of [NAME], one per line of FILE.")
@click.option("--values", "inline", multiple=True, metavar="NAME=A,B,C", help="Values of [NAME], comma-separated.")
@click.option("--sample", type=click.IntRange(min=1), help="Only this many combinations, drawn at random (seeded).")
@click.option("--seed", default=0, show_default=True, type=int)
def template(template, lists, inline, sample, seed):
    """Print prompts filled from TEMPLATE's [SLOTS], one per line (default: GPT4All-J's
    "Write a [TYPE] about [NOUN] in the style of [PERSON]"); every combination, or --sample N."""
    values = _named_values(lists, "--list", read_file=True)
    for name, items in _named_values(inline, "--values", read_file=False).items():
        values.setdefault(name, []).extend(items)
    for prompt in distill.fill_template(template, values, sample=sample, seed=seed):
        click.echo(prompt)


COMMANDS: list = [distill_command, cost, prompts]
