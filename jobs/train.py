"""The train job: a LoRA run as a job row, its loss history in the database as it goes.

This is what the CLI and the web app call. A caller that wants to watch a run reads
storage.training.runs() (status, progress) and storage.training.losses(run_id) (the loss
history), and curator.training.read_report(directory) once it is done. The run holds the
database's write lock until then, so the same losses also go to the run folder as they come
(curator.run_log), where another process can read them during the run.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import duckdb

from curator import run_log, training
from jobs.runner import Job, Progress, no_progress
from storage import training as run_rows


@dataclass
class TrainResult:
    job_id: int
    run_id: int
    report: dict


def train(
    con: duckdb.DuckDBPyConnection,
    config: training.TrainConfig,
    *,
    resume: bool = False,
    progress: Progress = no_progress,
) -> TrainResult:
    """Train config.data into config.out. resume=True continues the run in config.out from its
    last checkpoint (same settings required); the run keeps its train_runs row."""
    params = {**asdict(config), "resume": resume}
    with Job(con, "train", params, progress) as job:
        run_id = 0

        def record(event: dict) -> None:
            nonlocal run_id
            if event["kind"] == "start":
                run_id = run_rows.start_run(con, job.id, event["out"], event["base"], event["data"], params)
                resumed_from = event["resumed_from"]
                run_rows.forget_after(con, run_id, -1 if resumed_from is None else resumed_from)
                run_log.restart(event["out"], resumed_from)
            else:
                loss = (event["step"], event["kind"], event["loss"], event.get("lr"), event.get("tokens"))
                run_rows.add_loss(con, run_id, *loss)
                run_log.append(config.out, *loss)

        report = training.train(config, resume=resume, progress=job.report, on_event=record)
        run_rows.finish_run(con, run_id, report)
        job.counts = {
            "run": run_id,
            "steps": report["steps"],
            "val_loss_initial": report["val_loss_initial"],
            "val_loss_final": report["val_loss_final"],
            "tokens_per_s": report["tokens_per_s"],
        }
        return TrainResult(job.id, run_id, report)
