"""Crash safety and the database's guard rails: kill -9 resume, the write lock, read-only SQL."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import orjson
import pytest

import storage
from tests.conftest import DATA, needs_data, run_console


def _unique_rows(n: int) -> bytes:
    """n distinct real Alpaca pairs (cycled, numbered) as GPT4All JSON Lines."""
    base = json.loads((DATA / "alpaca_5000.json").read_text())
    out = bytearray()
    for i in range(n):
        r = base[i % len(base)]
        out += (
            orjson.dumps(
                {"prompt": f"{r['instruction']} (variant {i})", "response": r["output"] or "-", "source": "alpaca"}
            )
            + b"\n"
        )
    return bytes(out)


def _count(db) -> tuple[int, int, int]:
    con = storage.connect_read_only(db, wait=10)
    try:
        return con.execute("SELECT count(*), count(DISTINCT id), count(DISTINCT line) FROM pairs").fetchone()
    finally:
        con.close()


@needs_data
@pytest.mark.slow
def test_kill_9_then_rerun_ingests_every_row_exactly_once(tmp_path):
    rows = 120_000
    data = tmp_path / "big.jsonl"
    data.write_bytes(_unique_rows(rows))
    db = tmp_path / "crash.duckdb"
    command = [
        str(os.path.join(os.path.dirname(sys.executable), "curator")),
        "--db",
        str(db),
        "ingest",
        str(data),
        "--batch-size",
        "500",
    ]
    # Kill once some batches are committed, long before the end: the progress line names the
    # line the batch being written ends at, so every batch before it is committed.
    child = subprocess.Popen(
        command,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env={**os.environ, "CURATOR_PROGRESS": "1"},
    )
    seen = b""
    while child.poll() is None:
        seen = (seen + os.read(child.stderr.fileno(), 4096))[-200:]
        reached = [int(n.replace(b",", b"")) for n in re.findall(rb"line ([\d,]+)", seen)]
        if reached and max(reached) >= 5_000:
            break
    assert child.poll() is None, "ingest finished before it could be killed: make the file larger"
    child.send_signal(signal.SIGKILL)
    child.wait()

    partial, _, _ = _count(db)
    assert 0 < partial < rows

    again = run_console("--db", db, "ingest", data, "--batch-size", "500")
    assert again.returncode == 0, again.stderr
    assert "resumed after line" in again.stdout
    assert _count(db) == (rows, rows, rows)  # every row once: no loss, no repeat

    jobs = json.loads(run_console("--db", db, "jobs", "--json").stdout)
    assert [j["status"] for j in jobs] == ["done", "interrupted"]
    assert jobs[0]["counts"]["pairs"] == rows - partial


def test_a_held_database_is_reported_not_a_traceback(tmp_path):
    db = tmp_path / "held.duckdb"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import sys, time, storage
        con = storage.connect({str(db)!r})
        print("ready", flush=True)
        time.sleep(60)
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "ready"
        data = tmp_path / "x.jsonl"
        data.write_text('{"prompt": "Hi there", "response": "Hello"}\n')
        # A job waits for the file (CURATOR_LOCK_WAIT seconds) before it says who holds it.
        result = run_console("--db", db, "ingest", data, env={"CURATOR_LOCK_WAIT": "1"})
        assert result.returncode != 0
        assert f"is in use by process {holder.pid}" in result.stderr
        assert "Traceback" not in result.stderr
    finally:
        holder.kill()
        holder.wait()


def test_sql_is_read_only(curator, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": "Hi there", "response": "Hello"}\n')
    curator("ingest", path)
    assert curator.json("sql", "SELECT count(*) AS n FROM pairs_view") == [{"n": 1}]
    for statement in (
        "DELETE FROM pairs",
        "DROP VIEW pairs_view",
        "UPDATE pairs SET prompt = 'x'",
        f"COPY pairs TO '{tmp_path / 'out.csv'}'",
        f"ATTACH '{tmp_path / 'other.db'}' AS o",
        "SET enable_external_access = true",
    ):
        result = curator("sql", statement, ok=False)
        assert result.exit_code != 0, statement
        assert "Error" in result.output
    assert not (tmp_path / "out.csv").exists()
    assert curator.json("sql", "SELECT prompt FROM pairs_view") == [{"prompt": "Hi there"}]


def test_schema_is_migrated_once_and_versioned(tmp_path):
    from storage.db import schema_version
    from storage.schema import MIGRATIONS

    db = tmp_path / "m.duckdb"
    for _ in range(2):
        con = storage.connect(db)
        assert schema_version(con) == len(MIGRATIONS)
        assert con.execute("SELECT count(*) FROM schema_migrations").fetchone()[0] == len(MIGRATIONS)
        con.close()


def test_db_path_comes_from_option_then_environment(tmp_path, monkeypatch):
    data = tmp_path / "x.jsonl"
    data.write_text('{"prompt": "Hi there", "response": "Hello"}\n')
    env_db = tmp_path / "from-env.duckdb"
    result = run_console("ingest", data, env={"CURATOR_DB": str(env_db)}, cwd=tmp_path)
    assert result.returncode == 0 and env_db.exists()
    result = run_console("ingest", data, cwd=tmp_path, env={"CURATOR_DB": ""})
    assert result.returncode == 0 and (tmp_path / "curator.duckdb").exists()


def test_a_writer_waits_out_a_short_read(tmp_path):
    """The web app reads for moments; a job it has just started must wait that out, not fail."""
    db = tmp_path / "read.duckdb"
    data = tmp_path / "x.jsonl"
    data.write_text('{"prompt": "Hi there", "response": "Hello"}\n')
    assert run_console("--db", db, "ingest", data).returncode == 0
    reader = subprocess.Popen(
        [
            sys.executable,
            "-c",
            textwrap.dedent(f"""
        import time, storage
        con = storage.connect_read_only({str(db)!r})
        print("ready", flush=True)
        time.sleep(1.5)
        con.close()
    """),
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert reader.stdout.readline().strip() == "ready"
        result = run_console("--db", db, "signals")
        assert result.returncode == 0, result.stderr
    finally:
        reader.kill()
        reader.wait()
