"""The eval job: response perplexity of several models on one set, recorded as a job row.

Each model is loaded, scored on the same examples with its own tokenizer and template, and
freed before the next one loads, so a set of models never needs more than one model's memory.
"""

from __future__ import annotations

from pathlib import Path

from curator import evaluation
from jobs.runner import Job, Progress, no_progress
from storage.db import Database


def evaluate(
    db: Database,
    models: list[str],
    data: str | Path,
    *,
    lora: str | None = None,
    limit: int | None = None,
    template: str = "model",
    max_length: int = evaluation.DEFAULT_MAX_LENGTH,
    plot: str | Path | None = None,
    progress: Progress = no_progress,
) -> list[evaluation.Scores]:
    """Scores of each model on data (its first `limit` examples); a histogram PNG at `plot`.
    lora (a GGUF adapter) applies to every GGUF model."""
    params = {
        "models": models,
        "data": str(data),
        "lora": lora,
        "limit": limit,
        "template": template,
        "max_length": max_length,
        "plot": str(plot) if plot else None,
    }
    with Job(db, "eval", params, progress) as job:
        examples = evaluation.read_eval_examples(data)[:limit]
        total = len(examples) * len(models)
        results = []
        for i, spec in enumerate(models):
            offset = i * len(examples)
            job.report(offset, total, f"loading {spec}")
            model = evaluation.open_model(spec, lora, max_length)
            result = evaluation.score(
                model,
                examples,
                template,
                max_length,
                done=lambda n: job.report(offset + n, total, f"scoring {spec}"),  # noqa: B023 (called within score)
            )
            del model
            results.append(result)
            job.counts = {r.model: round(r.summary()["ppl_mean"], 3) for r in results}
        if plot:
            evaluation.plot_histograms(results, plot)
        return results
