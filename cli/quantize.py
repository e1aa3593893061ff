"""`curator quantize` and `curator eval` (registered by cli/main.py through COMMANDS).

torch, transformers and llama.cpp load only when one of these commands runs; so the type
names are written out here (tests/test_quantize.py checks them against curator.gguf_export).
"""

from __future__ import annotations

from pathlib import Path

import click

from cli.common import job_session
from cli.output import print_json, print_table
from curator.config import GGUF_TYPES


def _mb(n_bytes: int) -> str:
    return f"{n_bytes / 1e6:,.1f} MB"


@click.command()
@click.argument("run_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@click.option(
    "--type",
    "qtype",
    type=click.Choice(GGUF_TYPES),
    default="q4_1",
    show_default=True,
    help="File type. Tensors the adapter changed are kept at Q8_0 in 4- and 5-bit files; the others "
    "are copied from the base wherever its grid is no finer (the bundled base is Q4_1: q4_1, q5_* "
    "and q8_0 keep them losslessly, q4_0 re-quantizes them). f16: F16 throughout.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The GGUF to write (default: RUN_DIR/model-TYPE.gguf, or RUN_DIR/adapter.gguf).",
)
@click.option(
    "--adapter-only",
    is_flag=True,
    help="Write only the adapter, as a GGUF LoRA that llama.cpp applies to the base GGUF at run time.",
)
@click.option(
    "--plain",
    is_flag=True,
    help="Quantize the tuned tensors to --type too: the naive merge-then-quantize file (for comparison).",
)
@click.option(
    "--base-gguf",
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="GGUF of the run's base model (default: the bundled SmolLM2 for runs on it).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the file's quant_report.json entry.")
@click.pass_context
def quantize(ctx, run_dir, qtype, out, adapter_only, plain, base_gguf, as_json):
    """Write a trained run as a GGUF for llama.cpp, then measure the tuning gain it kept."""
    from jobs.quantize import REPORT_NAME
    from jobs.quantize import quantize as run_quantize

    if adapter_only and plain:
        raise click.UsageError("--plain applies to merged files, not --adapter-only")
    out = out or run_dir / ("adapter.gguf" if adapter_only else f"model-{qtype}.gguf")
    with job_session(ctx, unit="stage", unit_scale=False) as (db, bar):
        entry = run_quantize(
            db, run_dir, out, qtype, adapter_only=adapter_only, plain=plain, base_gguf=base_gguf, progress=bar
        )
    if as_json:
        print_json(entry)
    else:
        _print_quantized(entry, out.parent / REPORT_NAME)
    if entry["warning"]:
        click.secho(f"WARNING: {entry['warning']}", err=True, fg="red", bold=True)


def _print_quantized(entry: dict, report: Path) -> None:
    if entry["type"] == "adapter":
        click.echo(
            f"wrote {entry['path']}: {_mb(entry['size_bytes'])} GGUF LoRA ({entry['tuned_tensors']} tensors, "
            f"F32), applied at run time to {entry['runs_with']} ({_mb(entry['base_gguf_size_bytes'])})"
        )
    else:
        kept = f", {entry['tuned_tensors']} tuned tensors at {entry['tuned_type']}" + (
            f" (+{_mb(entry['keep_cost_bytes'])} to keep the tuning)" if entry["keep_cost_bytes"] else ""
        )
        click.echo(
            f"wrote {entry['path']}: {_mb(entry['size_bytes'])}, {entry['type']}{kept}; "
            f"{entry['copied_tensors']} tensors copied unchanged from {Path(entry['base_gguf']).name}"
        )
    file_engine = entry["engines"]["file"]
    click.echo(f"response perplexity on {entry['examples']} validation examples of the run (token-weighted):")
    print_table(
        ["model", "engine", "ppl"],
        [
            ("base", entry["engines"]["base"], f"{entry['ppl_base']:.3f}"),
            ("tuned", entry["engines"]["tuned"], f"{entry['ppl_tuned']:.3f}"),
            (Path(entry["path"]).name, file_engine, f"{entry['ppl_file']:.3f}"),
        ],
    )
    if entry["gain_kept"] is not None:
        click.echo(f"gain kept: {entry['gain_kept']:.0%} of the tuning's perplexity gain")
    click.echo(f"recorded in {report}")


@click.command("eval")
@click.argument("models", nargs=-1, required=True)
@click.option(
    "--data",
    type=click.Path(exists=True, path_type=Path),
    help="JSONL of prompt/response (any ingestable format), an export directory (its val.jsonl), "
    "or Self-Instruct tasks.",
)
@click.option("--limit", type=int, help="Only the first N examples.")
@click.option(
    "--lora",
    type=click.Path(exists=True, dir_okay=False),
    help="A GGUF LoRA adapter applied to every GGUF model at run time.",
)
@click.option(
    "--template",
    type=click.Choice(("model", "chatml", "gpt4all")),
    default="model",
    show_default=True,
    help="Each model's own chat template, ChatML, or GPT4All's prompt\\nresponse<eos>.",
)
@click.option(
    "--max-length", type=int, default=1024, show_default=True, help="Tokens per example; longer ones are cut."
)
@click.option("--plot", type=click.Path(dir_okay=False, path_type=Path), help="Write a histogram PNG of the models.")
@click.option(
    "--tasks",
    help="lm-evaluation-harness tasks, comma-separated (needs the eval extra, curator[eval], and the internet).",
)
@click.option("--json", "as_json", is_flag=True, help="Print a JSON list of {model, n, ppl_mean, ppl_median, ...}.")
@click.pass_context
def eval_command(ctx, models, data, limit, lora, template, max_length, plot, tasks, as_json):
    """Response perplexity (conditioned on the prompt, clipped at 100) of torch models, training runs and
    GGUF files (in llama.cpp) on one set."""
    from curator import evaluation
    from jobs.evaluate import evaluate

    if data is None and not tasks:
        raise click.UsageError("give --data (perplexity) or --tasks (lm-evaluation-harness), or both")
    if tasks and not evaluation.lm_eval_installed():
        raise click.ClickException("--tasks needs lm-evaluation-harness: pip install 'curator[eval]'")
    if lora and not any(spec.endswith(".gguf") for spec in models):
        raise click.UsageError("--lora applies to GGUF models, and none is given")
    if tasks and any(spec.endswith(".gguf") for spec in models):
        raise click.UsageError("--tasks runs torch models (names, directories, training runs), not GGUF files")
    output = []
    if data is not None:
        with job_session(ctx, unit="example", unit_scale=False) as (db, bar):
            results = evaluate(
                db,
                list(models),
                data,
                lora=lora,
                limit=limit,
                template=template,
                max_length=max_length,
                plot=plot,
                progress=bar,
            )
        output = [{**r.summary(), "ppl_per_example": r.ppl} for r in results]
    if tasks:
        names = [t.strip() for t in tasks.split(",") if t.strip()]
        by_model = {o["model"]: o for o in output}
        output = [
            {**by_model.get(spec, {"model": spec}), "tasks": evaluation.lm_eval_tasks(spec, names, limit)}
            for spec in models
        ]
    if as_json:
        print_json(output)
        return
    if data is not None:
        print_table(
            ["model", "engine", "n", "ppl mean", "ppl median", "ppl (tokens)", "clipped", "s"],
            [
                (
                    o["model"],
                    o["engine"],
                    o["n"],
                    f"{o['ppl_mean']:.3f}",
                    f"{o['ppl_median']:.3f}",
                    f"{o['ppl_tokens']:.3f}",
                    o["clipped"],
                    o["seconds"],
                )
                for o in output
            ],
            max_width=70,
        )
    if tasks:
        print_json([{"model": o["model"], "tasks": o["tasks"]} for o in output])
    if plot:
        click.echo(f"histogram in {plot}")


COMMANDS = [quantize, eval_command]
