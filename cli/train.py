"""`curator train` and `curator score` (registered by cli/main.py through COMMANDS).

torch, transformers and peft load only when one of these commands runs: the rest of the CLI
starts without them. The defaults and choices shown come from curator.config, which imports
none of them.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli.common import job_session
from cli.output import print_json, print_table
from curator import config

DEFAULTS = {**config.train_defaults(), "targets": ",".join(config.train_defaults()["targets"])}


@click.command()
@click.argument("data", type=click.Path(exists=True, path_type=Path))
@click.option(
    "--base", help="Base model: a Hugging Face name or local directory (default: the bundled SmolLM2-135M-Instruct)."
)
@click.option(
    "--out",
    type=click.Path(file_okay=False, path_type=Path),
    help="Output directory (default: runs/lora-YYYYmmdd-HHMMSS).",
)
@click.option(
    "--epochs",
    type=int,
    help="Passes over the training data (default: 1; on a CPU, 1 or 60 steps, whichever is fewer).",
)
@click.option("--max-steps", type=int, help="Optimizer steps instead of --epochs.")
@click.option("--lr", type=float, default=DEFAULTS["lr"], show_default=True, help="Peak learning rate.")
@click.option("--lora-r", type=int, default=DEFAULTS["lora_r"], show_default=True)
@click.option("--lora-alpha", type=int, default=DEFAULTS["lora_alpha"], show_default=True)
@click.option("--lora-dropout", type=float, default=DEFAULTS["lora_dropout"], show_default=True)
@click.option(
    "--targets", default=DEFAULTS["targets"], show_default=True, help="Modules that get LoRA, comma-separated."
)
@click.option(
    "--max-length",
    type=int,
    default=DEFAULTS["max_length"],
    show_default=True,
    help="Tokens per example; longer ones are cut (and get no EOS).",
)
@click.option("--batch-size", type=int, default=DEFAULTS["batch_size"], show_default=True)
@click.option(
    "--grad-accum",
    type=int,
    default=DEFAULTS["grad_accum"],
    show_default=True,
    help="Micro-batches per optimizer step.",
)
@click.option(
    "--val",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="Validation file (default: DATA/val.jsonl, else --val-fraction of the training file).",
)
@click.option("--val-fraction", type=float, default=DEFAULTS["val_fraction"], show_default=True)
@click.option(
    "--val-max",
    type=int,
    default=DEFAULTS["val_max"],
    show_default=True,
    help="Validation examples evaluated (a seeded subset of larger sets).",
)
@click.option(
    "--template",
    type=click.Choice(config.TEMPLATES),
    default=DEFAULTS["template"],
    show_default=True,
    help="The base model's chat template, ChatML, or GPT4All's prompt\\nresponse<eos>.",
)
@click.option("--eval-every", type=int, help="Steps between validations (default: four over the run).")
@click.option(
    "--save-every",
    type=int,
    default=DEFAULTS["save_every"],
    show_default=True,
    help="Steps between checkpoints in OUT/checkpoint-STEP (0: none).",
)
@click.option("--resume", is_flag=True, help="Continue the run in --out from its last checkpoint.")
@click.option("--merge", is_flag=True, help="Also write the base with the adapter merged in, to OUT/merged.")
@click.option("--seed", type=int, default=DEFAULTS["seed"], show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print train_report.json.")
@click.pass_context
def train(
    ctx,
    data,
    base,
    out,
    epochs,
    max_steps,
    lr,
    lora_r,
    lora_alpha,
    lora_dropout,
    targets,
    max_length,
    batch_size,
    grad_accum,
    val,
    val_fraction,
    val_max,
    template,
    eval_every,
    save_every,
    resume,
    merge,
    seed,
    as_json,
):
    """LoRA-train a base model on an export directory (train.jsonl, val.jsonl) or a JSONL file."""
    from jobs.train import train as run_train

    if resume and out is None:
        raise click.UsageError("--resume needs the --out of the run to continue")
    out = out or Path("runs") / time.strftime("lora-%Y%m%d-%H%M%S")
    settings = config.TrainConfig(
        data=str(data),
        out=str(out),
        base=base,
        epochs=epochs,
        max_steps=max_steps,
        lr=lr,
        lora_r=lora_r,
        lora_alpha=lora_alpha,
        lora_dropout=lora_dropout,
        targets=tuple(t.strip() for t in targets.split(",") if t.strip()),
        max_length=max_length,
        batch_size=batch_size,
        grad_accum=grad_accum,
        val=str(val) if val else None,
        val_fraction=val_fraction,
        val_max=val_max,
        template=template,
        eval_every=eval_every,
        save_every=save_every,
        seed=seed,
        merge=merge,
    )
    with job_session(ctx, unit="step", unit_scale=False) as (db, bar):
        result = run_train(db, settings, resume=resume, progress=bar)
    report = result.report
    if report["records_skipped"]:
        click.echo(
            f"warning: {report['records_skipped']:,} record(s) skipped, holding no conversation "
            f"(first: {report['records_skipped_first'][0]})",
            err=True,
        )
    if as_json:
        print_json(report)
        return
    click.echo(
        f"trained {report['steps']:,} steps ({report['epochs_done']:.2f} epochs of "
        f"{report['examples_train']:,} examples; {report['base']}, {report['device']}): "
        f"{report['tokens_per_s']:,.0f} tokens/s"
    )
    if report["val_loss_initial"] is not None:
        click.echo(
            f"validation loss {report['val_loss_initial']:.3f} -> {report['val_loss_final']:.3f} "
            f"(perplexity {report['val_perplexity_initial']:.2f} -> {report['val_perplexity_final']:.2f}, "
            f"{report['examples_val']:,} examples)"
        )
    click.echo(
        f"adapter, train_report.json and loss_curve.png in {settings.out}"
        + (f"; merged model in {report['merged']}" if report["merged"] else "")
    )
    click.echo(f"next: curator score {settings.out}")


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option("--batch-size", type=int, default=16, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object.")
@click.pass_context
def score(ctx, run_dir, batch_size, as_json):
    """Each pair's loss under the base and the tuned model of a finished run (pairs_view: loss_base, loss_tuned)."""
    from jobs.score import score as run_score

    with job_session(ctx, unit="example", unit_scale=False) as (db, bar):
        result = run_score(db, run_dir, batch_size=batch_size, progress=bar)
    if as_json:
        print_json(
            {
                "job": result.job_id,
                "score_run": result.score_run_id,
                "examples": result.examples,
                "matched": result.matched,
                "pairs": result.pairs,
                "splits": result.summary,
            }
        )
        return
    click.echo(
        f"score run {result.score_run_id}: {result.pairs:,} pairs scored ({result.matched:,} of the run's "
        f"{result.examples:,} examples are in the database)"
    )
    print_table(
        ["split", "pairs", "loss base", "loss tuned", "improved"],
        [
            (s["split"], f"{s['pairs']:,}", f"{s['loss_base']:.3f}", f"{s['loss_tuned']:.3f}", f"{s['improved']:.0%}")
            for s in result.summary
        ],
    )


COMMANDS = [train, score]
