"""The IFD job: instruction-following difficulty of every pair not deleted (curator.quality).

Pairs are scored a chunk at a time, each chunk committed with the job's progress: a killed job
loses at most one chunk, and the same command run again (same model, template and max
length: the run's identity) scores only the pairs that run has not scored, new ones included.
The database is open only to read a chunk's texts and to commit its scores: the scoring runs
with the file closed.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field

from curator import evaluation, quality, training
from jobs.runner import Job, Progress, no_progress
from storage import quality as quality_rows
from storage.db import Database

CHUNK = 256  # pairs per commit: ~5-15 s of scoring on 2 cores with the bundled model (bench/quality.py)


@dataclass
class IfdReport:
    job_id: int
    run_id: int
    model: str
    scored: int = 0  # now
    already: int = 0  # by earlier jobs on the same run
    left: int = 0  # not deleted, not scored (--limit)
    unscorable: int = 0  # now: no response token within max_length
    seconds: float = 0.0
    by_source: list[dict] = field(default_factory=list)

    @property
    def pairs_per_s(self) -> float:
        return self.scored / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {**asdict(self), "pairs_per_s": round(self.pairs_per_s, 2)}


def ifd(
    db: Database,
    *,
    model: str | None = None,
    template: str = "model",
    max_length: int = 512,
    batch_size: int = 16,
    limit: int | None = None,
    progress: Progress = no_progress,
) -> IfdReport:
    """Score every pair not deleted that this run has not scored (at most `limit` now)."""
    name = model or training.BUNDLED_BASE
    params = {"model": name, "template": template, "max_length": max_length, "batch_size": batch_size, "limit": limit}
    with Job(db, "ifd", params, progress) as job:
        with db.writing() as con:
            run_id, _ = quality_rows.ensure_run(
                con,
                "ifd",
                quality.run_identity(name, template, max_length),
                name,
                {k: params[k] for k in ("template", "max_length")},
                job.id,
            )
        report = IfdReport(job.id, run_id, name)
        with db.reading() as con:
            todo = quality_rows.live_pair_ids(con, run_id)
            report.already = quality_rows.scored_count(con, run_id)
        chosen = todo[:limit] if limit is not None else todo
        report.left = len(todo) - len(chosen)
        started = time.monotonic()
        if len(chosen):
            job.report(0, len(chosen), f"loading {name}")
            scorer = evaluation.open_model(name, max_length=max_length, batch_size=batch_size)
            for start in range(0, len(chosen), CHUNK):
                ids = chosen[start : start + CHUNK]
                with db.reading() as con:
                    prompts, responses = quality_rows.texts(con, ids)

                def done(n: int, offset: int = start) -> None:
                    # n counts examples of both passes over the chunk; the bar counts pairs
                    progress(offset + n // 2, len(chosen), f"scoring with {name}")

                scores = quality.ifd_scores(scorer, prompts, responses, template, max_length, done)
                with db.writing() as con:
                    quality_rows.add_ifd(
                        con, run_id, ids, scores.tokens, scores.loss_given_prompt, scores.loss_alone, scores.ifd
                    )
                    report.scored += len(ids)
                    report.unscorable += sum(t == 0 for t in scores.tokens)
                    report.seconds = time.monotonic() - started
                    job.counts = {"run": run_id, "scored": report.scored, "already": report.already}
                    job.report(
                        start + len(ids),
                        len(chosen),
                        f"{report.scored:,} pairs scored, {report.pairs_per_s:.1f} pairs/s",
                        con,
                    )
        report.seconds = time.monotonic() - started
        with db.reading() as con:
            report.by_source = quality_rows.ifd_summary(con, run_id)
        job.counts = {"run": run_id, "scored": report.scored, "already": report.already, "left": report.left}
        return report
