"""The train job: a LoRA run as a job row, its loss history in the database as it goes.

This is what the CLI and the web app call. A caller that wants to watch a run reads
storage.training.runs() (status, progress) and storage.training.losses(run_id) (the loss
history), and curator.training.read_report(directory) once it is done. The run opens the
database only to record its start, its losses (gathered and written every few seconds) and its
end; the same losses also go to the run folder as they come (curator.run_log).
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass

from curator import run_log, training
from jobs.runner import PROGRESS_WRITE_EVERY, Job, Progress, no_progress
from storage import training as run_rows
from storage.db import Database


@dataclass
class TrainResult:
    job_id: int
    run_id: int
    report: dict


def train(
    db: Database,
    config: training.TrainConfig,
    *,
    resume: bool = False,
    progress: Progress = no_progress,
) -> TrainResult:
    """Train config.data into config.out. resume=True continues the run in config.out from its
    last checkpoint (same settings required); the run keeps its train_runs row."""
    params = {**asdict(config), "resume": resume}
    with Job(db, "train", params, progress) as job:
        run_id = 0
        pending: list[tuple] = []  # losses not yet in the database
        written_at = time.monotonic()

        def write_losses() -> None:
            nonlocal written_at
            with db.writing() as con:
                for loss in pending:
                    run_rows.add_loss(con, run_id, *loss)
            pending.clear()
            written_at = time.monotonic()

        def record(event: dict) -> None:
            nonlocal run_id
            if event["kind"] == "start":
                with db.writing() as con:
                    run_id = run_rows.start_run(con, job.id, event["out"], event["base"], event["data"], params)
                    resumed_from = event["resumed_from"]
                    run_rows.forget_after(con, run_id, -1 if resumed_from is None else resumed_from)
                run_log.restart(event["out"], resumed_from)
            else:
                loss = (event["step"], event["kind"], event["loss"], event.get("lr"), event.get("tokens"))
                run_log.append(config.out, *loss)
                pending.append(loss)
                if time.monotonic() - written_at >= PROGRESS_WRITE_EVERY:
                    write_losses()

        report = training.train(config, resume=resume, progress=job.report, on_event=record)
        write_losses()
        with db.writing() as con:
            run_rows.finish_run(con, run_id, report)
        job.counts = {
            "run": run_id,
            "steps": report["steps"],
            "val_loss_initial": report["val_loss_initial"],
            "val_loss_final": report["val_loss_final"],
            "tokens_per_s": report["tokens_per_s"],
        }
        return TrainResult(job.id, run_id, report)
