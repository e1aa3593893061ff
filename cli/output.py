"""How the CLI shows things: tables, JSON, progress bars."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import sys
import uuid
from typing import TYPE_CHECKING

import click
from tqdm import tqdm

if TYPE_CHECKING:
    from jobs.demo import Stage


def _plain(value):
    if isinstance(value, (dt.datetime, dt.date, dt.time)):
        return value.isoformat()
    if isinstance(value, (decimal.Decimal, uuid.UUID)):
        return str(value)
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return str(value)


def print_json(value) -> None:
    click.echo(json.dumps(value, default=_plain, ensure_ascii=False, indent=2))


def _cell(value, width: int) -> str:
    if value is None:
        text = ""
    elif isinstance(value, str):
        text = value
    elif isinstance(value, (dict, list)):
        text = json.dumps(value, default=_plain, ensure_ascii=False)
    else:
        text = _plain(value)
    text = text.replace("\n", "⏎ ")
    return text if len(text) <= width else text[: width - 1] + "…"


def print_table(columns: list[str], rows: list[tuple | list], max_width: int = 60) -> None:
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    click.echo("  ".join(c.ljust(w) for c, w in zip(columns, widths)).rstrip())
    click.echo("  ".join("-" * w for w in widths))
    for row in cells:
        click.echo("  ".join(v.ljust(w) for v, w in zip(row, widths)).rstrip())


class ProgressBar:
    """A tqdm bar on stderr driven by jobs' progress(done, total, message) callbacks."""

    def __init__(self, unit: str = "B", unit_scale: bool = True):
        # Off when stderr is not a terminal, unless CURATOR_PROGRESS=1: the web app runs jobs
        # with stderr to a log file and shows its last line.
        forced = os.environ.get("CURATOR_PROGRESS") == "1"
        self.bar = tqdm(
            total=0,
            unit=unit,
            unit_scale=unit_scale,
            file=sys.stderr,
            dynamic_ncols=not forced,
            ncols=100 if forced else None,
            disable=False if forced else None,
            mininterval=0.5,
        )

    def __call__(self, done: int, total: int, message: str) -> None:
        if self.bar.total != total:
            self.bar.total = total
        self.bar.set_postfix_str(message, refresh=False)
        self.bar.update(done - self.bar.n)

    def close(self) -> None:
        self.bar.close()


class StageBars:
    """A progress bar per stage of `demo --full`, each stage's line printed as it ends."""

    def __init__(self):
        self.bar = ProgressBar(unit="", unit_scale=False)

    def __call__(self, done: int, total: int, message: str) -> None:
        self.bar(done, total, message)

    def stage(self, stage: Stage) -> None:
        self.bar.close()
        detail = stage.detail if stage.ran else f"skipped, {stage.detail}"
        click.echo(f"{stage.name}: {detail} ({stage.seconds:,.0f} s)")
        self.bar = ProgressBar(unit="", unit_scale=False)
