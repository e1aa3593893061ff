"""The score job: each pair's loss under the base and the tuned model of a finished run.

Only the run's examples that are pairs in the database are scored (matched on the normalized
prompt + response hash, as ingest computes pairs.pair_hash); their losses go into one score
run, and pairs_view shows the latest score run's loss_base and loss_tuned.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from curator import scoring
from curator.errors import UserError
from jobs.runner import Job, Progress, no_progress
from storage import training as run_rows
from storage.db import Database


@dataclass
class ScoreResult:
    job_id: int
    score_run_id: int
    examples: int  # in the run's data
    matched: int  # of them, pairs found in the database
    pairs: int  # stored pairs scored (an example can match several exact duplicates)
    summary: list[dict]  # per split: pairs, mean loss_base, mean loss_tuned, share improved


def score(db: Database, run_dir: str | Path, *, batch_size: int = 16, progress: Progress = no_progress) -> ScoreResult:
    """Per-pair losses of a training run's model on its own training examples, stored against
    the pairs they came from (a pair's loss: colourable and sortable in the app)."""
    directory = str(Path(run_dir).resolve())
    with Job(db, "score", {"run": directory, "batch_size": batch_size}, progress) as job:
        run = scoring.run_data(directory)
        with db.reading() as con:
            matches = run_rows.match_pairs(con, [e.prompt for e in run.examples], [e.response for e in run.examples])
        rows = sorted({row for row, _ in matches})
        if not rows:
            raise UserError(
                f"none of the {len(run.examples):,} examples of {directory} is a pair in this "
                "database (scoring needs the pairs the export came from)"
            )
        scores = scoring.score(run, [run.examples[r] for r in rows], batch_size, job.report)
        at = {row: i for i, row in enumerate(rows)}
        kept = [(pair_id, at[row]) for row, pair_id in matches if scores.tokens[at[row]]]
        with db.writing() as con:
            score_run_id = run_rows.save_scores(
                con,
                job.id,
                directory,
                run.report["base"],
                [pair for pair, _ in kept],
                [run.trained[rows[i]] for _, i in kept],
                [scores.tokens[i] for _, i in kept],
                [scores.loss_base[i] for _, i in kept],
                [scores.loss_tuned[i] for _, i in kept],
            )
            summary = run_rows.score_summary(con, score_run_id)
        pairs = sum(s["pairs"] for s in summary)
        job.counts = {"score_run": score_run_id, "examples": len(run.examples), "matched": len(rows), "pairs": pairs}
        return ScoreResult(job.id, score_run_id, len(run.examples), len(rows), pairs, summary)
