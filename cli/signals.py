"""`curator` commands for signals (registered by cli/main.py through COMMANDS)."""

from __future__ import annotations

from dataclasses import asdict

import click

import storage
from cli.common import database
from cli.output import ProgressBar, print_json, print_table
from curator.signals import FLAGS, SignalParams
from jobs.signals import BATCH_SIZE, SignalReport, compute_signals

_DEFAULTS = SignalParams()


@click.command(
    "signals",
    epilog="Flags (curator.signals.FLAGS): "
    + "; ".join(f"{name}: {flag.meaning(_DEFAULTS)}" for name, flag in FLAGS.items())
    + ".",
)
@click.option(
    "--short-words",
    default=_DEFAULTS.short_words,
    show_default=True,
    type=click.IntRange(min=1),
    help="`short`: responses under this many words.",
)
@click.option(
    "--max-tokens",
    default=_DEFAULTS.max_tokens,
    show_default=True,
    type=click.IntRange(min=1),
    help="`over_length`: pairs over this many tokens under the chat template.",
)
@click.option(
    "--tokenizer",
    default=_DEFAULTS.tokenizer,
    show_default=True,
    help="Whose chat template and tokenizer count tokens: the bundled SmolLM2, any Hugging Face "
    "tokenizer name or directory, or a .gguf file.",
)
@click.option(
    "--batch-size",
    default=BATCH_SIZE,
    show_default=True,
    type=click.IntRange(min=1),
    help="Pairs per committed batch: the resume granularity after a crash.",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def signals(ctx, short_words, max_tokens, tokenizer, batch_size, as_json):
    """Quality flags, the response's language and the pair's tokens, for every pair (flags below).

    Pairs already computed under the same thresholds are skipped; other thresholds recompute
    all. The columns appear in pairs_view (e.g. `curator sql "SELECT ... WHERE refusal"`)."""
    params = SignalParams(short_words=short_words, max_tokens=max_tokens, tokenizer=tokenizer)
    bar = ProgressBar(unit="pair", unit_scale=False)
    try:
        report = compute_signals(storage.Database(database(ctx)), params, progress=bar, batch_size=batch_size)
    finally:
        bar.close()
    if as_json:
        print_json(report.as_dict())
    else:
        _print_report(report)


def _print_report(report: SignalReport) -> None:
    summary, params = report.summary, report.params
    click.echo(
        f"signals run {report.run_id} (job {report.job_id}): {report.computed:,} pairs computed, "
        f"{report.already:,} already current, {report.pairs_per_s:,.0f} pairs/s"
    )
    share = (lambda n: f"{n / summary['pairs']:.1%}") if summary["pairs"] else (lambda n: "-")
    rows = [(flag, f"{n:,}", share(n), FLAGS[flag].meaning(params)) for flag, n in summary["counts"].items()]
    print_table(["signal", "pairs", "share", "rule"], rows, max_width=110)
    if summary["malformed_reasons"]:
        click.echo("malformed: " + ", ".join(f"{k} {v:,}" for k, v in summary["malformed_reasons"].items()))
    if summary["pii_kinds"]:
        click.echo("pii: " + ", ".join(f"{k} {v:,}" for k, v in summary["pii_kinds"].items()))
    languages = list(summary["languages"].items())
    click.echo(
        "lang: "
        + ", ".join(f"{k} {v:,}" for k, v in languages[:8])
        + (f", {len(languages) - 8} more" if len(languages) > 8 else "")
        + f" (none: under {params.lang_min_letters} letters or under {params.lang_min_confidence:g} confidence)"
    )
    tokens = summary["tokens"]
    click.echo(
        f"tokens ({report.tokenizer}): max {tokens['max'] or 0:,}, mean {tokens['mean'] or 0:,}, "
        f"p95 {tokens['p95'] or 0:,}"
        + (f", {tokens['template_errors']:,} pairs the template refused" if tokens["template_errors"] else "")
    )
    if summary["missing"]:
        click.echo(f"warning: {summary['missing']:,} pairs have no signals under these thresholds", err=True)
    click.echo("thresholds: " + ", ".join(f"{k}={v}" for k, v in asdict(params).items()))


COMMANDS: list = [signals]
