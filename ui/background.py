"""Commands the app runs in child processes: `curator ...` on the app's database.

The app starts a job as a child process, as a terminal would: its work (encoding, fitting,
training) runs beside the app's server, not in it. The job opens the database only for short
reads and writes (storage.Database), so pages keep reading it; the child's log file gives its
latest progress line.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import streamlit as st

from ui import state

CURATOR = str(Path(sys.executable).with_name("curator"))  # the CLI of this environment


@dataclass
class Child:
    args: list[str]
    log: Path
    process: subprocess.Popen

    @property
    def running(self) -> bool:
        return self.process.poll() is None

    def last_line(self) -> str:
        """The newest progress line of its log: progress bars rewrite their line with \\r."""
        try:
            text = self.log.read_text(errors="replace")[-4000:]
        except FileNotFoundError:
            return ""
        lines = [line.strip() for line in re.split(r"[\r\n]+", text) if line.strip()]
        return lines[-1] if lines else ""


@st.cache_resource
def children() -> dict[str, Child]:
    """Children started by this server, by a key the page chooses: every session sees them."""
    return {}


def start(key: str, args: list, log: Path, output: Path | None = None) -> Child:
    """Start `curator --db DB ARGS`: stderr (progress bars, errors) to log, stdout to output
    (default: the log too)."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w") as err, open(output or log, "a" if output is None else "w") as out:
        # The child keeps its own copies of the files.
        process = subprocess.Popen(
            [CURATOR, "--db", state.db_path(), *map(str, args)],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            env={**os.environ, "CURATOR_PROGRESS": "1"},
        )
    child = Child([str(a) for a in args], log, process)
    children()[key] = child
    return child


def get(key: str) -> Child | None:
    return children().get(key)
