"""Shared fixtures: the real datasets beside the checkout, a fresh database, the CLI."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

import storage
from cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
needs_data = pytest.mark.skipif(
    not DATA.exists(), reason="needs ../shared/data (the project's shared real datasets; CI has it)"
)


@pytest.fixture
def db(tmp_path) -> Path:
    return tmp_path / "test.duckdb"


class Curator:
    """Runs `curator --db DB ...` in-process and returns (exit code, output)."""

    def __init__(self, db: Path):
        self.db = db
        self.runner = CliRunner()

    def __call__(self, *args: str, ok: bool = True):
        result = self.runner.invoke(cli, ["--db", str(self.db), *map(str, args)], catch_exceptions=False)
        if ok:
            assert result.exit_code == 0, result.output
        return result

    def json(self, *args: str):
        return json.loads(self(*args, "--json").stdout)


@pytest.fixture
def curator(db) -> Curator:
    # The cache (demo file, ONNX export, distilled model, numba) is the user's real one: its
    # contents are deterministic, and rebuilding them per test would cost minutes.
    return Curator(db)


def query(db, sql, params=None) -> list[tuple]:
    """Rows of a read-only query on a test database (waiting out a running job's short write)."""
    con = storage.connect_read_only(db, wait=30)
    try:
        return con.execute(sql, params or []).fetchall()
    finally:
        con.close()


def run_console(*args: str, **kwargs) -> subprocess.CompletedProcess:
    """The installed console script in a child process (for kill -9 and locking tests)."""
    exe = Path(sys.executable).with_name("curator")
    return subprocess.run(
        [str(exe), *map(str, args)],
        capture_output=True,
        text=True,
        env={**os.environ, **kwargs.pop("env", {})},
        **kwargs,
    )


def built_once(tmp_path_factory, name: str, commands) -> Path:
    """A database that `curator` commands build once per test session, whichever module asks
    first: `commands(folder)` gives the argument lists (it may write input files into folder)."""
    folder = tmp_path_factory.getbasetemp() / name
    db = folder / "mapped.duckdb"
    if not (folder / "ready").exists():
        folder.mkdir(exist_ok=True)
        for args in commands(folder):
            result = run_console("--db", db, *args)
            assert result.returncode == 0, result.stderr
        (folder / "ready").touch()
    return db


def copy_to(template: Path, db: Path) -> Path:
    """A private copy of a built database (vectors and projection are shared: they are only read)."""
    shutil.copyfile(template, db)
    return db


@pytest.fixture(scope="session")
def demo_built(tmp_path_factory) -> tuple[Path, str]:
    """`curator demo`'s database and what the command printed, built once per test session for
    test_demo.py and test_browser.py (~25 s): each takes a private copy, since both write."""
    folder = tmp_path_factory.getbasetemp() / "demo-built"
    db, printed = folder / "demo.duckdb", folder / "demo.stdout"
    if not (folder / "ready").exists():
        folder.mkdir(exist_ok=True)
        result = run_console("--db", db, "demo")
        assert result.returncode == 0, result.stderr
        printed.write_text(result.stdout, encoding="utf-8")
        (folder / "ready").touch()
    return db, printed.read_text(encoding="utf-8")
