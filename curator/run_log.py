"""A training run's folder as another process reads it while the run goes on.

A run logs each loss to the database too, but it holds the database's write lock until it ends
(DuckDB allows one writer process), so a watcher (the web app's Train page) reads the losses
from LOSSES in the run folder instead: one JSON line per logged loss, appended as the run goes
and cut back to the checkpoint when a run resumes, as the database's rows are. Nothing here
imports torch: watching a run must not load the trainer.
"""

from __future__ import annotations

import json
from pathlib import Path

LOSSES = "losses.jsonl"
CONFIG = "train_config.json"  # written by curator.training when a run starts
REPORT = "train_report.json"  # written by curator.training when a run ends
PLOT = "loss_curve.png"


def restart(out: str | Path, resumed_from: int | None) -> None:
    """Keep the losses up to the checkpoint a run resumes from (None: a fresh run, none)."""
    kept = [e for e in losses(out) if resumed_from is not None and e["step"] <= resumed_from]
    (Path(out) / LOSSES).write_text("".join(json.dumps(e) + "\n" for e in kept))


def append(out: str | Path, step: int, split: str, loss: float, lr: float | None, tokens: int | None) -> None:
    with open(Path(out) / LOSSES, "a") as log:
        log.write(json.dumps({"step": step, "split": split, "loss": loss, "lr": lr, "tokens": tokens}) + "\n")


def losses(out: str | Path) -> list[dict]:
    """The losses logged so far: {step, split ('train'|'val'), loss, lr, tokens}, in log order.
    A last line still being written is left for the next read."""
    path = Path(out) / LOSSES
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]


def settings(out: str | Path) -> dict:
    """What the run was started with (curator.training.TrainConfig.order_settings); {} until
    the run has started."""
    path = Path(out) / CONFIG
    return json.loads(path.read_text()) if path.exists() else {}


def report(out: str | Path) -> dict | None:
    """train_report.json, or None while the run has not finished."""
    path = Path(out) / REPORT
    return json.loads(path.read_text()) if path.exists() else None
