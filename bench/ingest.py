"""Ingest benchmark: `curator ingest` against DuckDB's own read_json on the same JSONL file.

Run it from the project root with `make bench`, which runs `.venv/bin/python bench/ingest.py`,
or directly:

    .venv/bin/python bench/ingest.py                     # 1,000,000 rows, one run of each
    .venv/bin/python bench/ingest.py --rows 20000        # a CI-size smoke run
    .venv/bin/python bench/ingest.py --repeat 3 --json   # three interleaved runs, plus JSON

What it does:

1. Builds a GPT4All JSONL file ({"prompt", "response", "source"} per line) of --rows rows
   from real records in ../shared/data (Alpaca, GPTeacher, Code Alpaca, FastChat, P3/T0),
   converted with curator's own format layer, deduplicated, shuffled, then cycled with
   " (variant N)" appended to the prompt so that every row is a distinct pair. The file is
   written under bench/out/ (git-ignored) and reused by later runs with the same row count;
   the data files themselves are only read, never copied into the repository.
2. Times `curator --db FRESH.duckdb ingest FILE` as a child process.
3. Times the raw baseline, a child Python process running
   `CREATE TABLE raw AS SELECT * FROM read_json(FILE, format='newline_delimited')`
   into another fresh database.
   With --floor, also times that statement plus the two normalized content hashes curator
   stores for every pair (RAW_WITH_HASHES): the bound those hashes alone put on the ratio.
4. Prints seconds, rows/s, MB/s, CPU seconds and peak RSS of each run, and the ratio
   raw seconds / curator seconds: curator's speed as a fraction of raw read_json (the
   project's goal is >= 0.5x). It then checks that `pairs` holds exactly --rows rows.

Each child is reaped with os.wait4, which returns that child's own resource usage, so the
peak RSS of one run never leaks into another's (RUSAGE_CHILDREN would report the maximum
over all children so far). Exit status: 0 when both commands succeeded and the counts match.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import duckdb
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `curator` importable without installing

from curator import formats  # noqa: E402  (after the path fix above)

OUT_DIR = ROOT / "bench" / "out"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
# Bump when the generated rows change, so that a cached file from an older recipe is not reused.
BUILD_VERSION = 1
SEED = 20240601

# (glob under the data folder, how to name the rows' source). Arrays of Alpaca-style,
# GPTeacher and ShareGPT records, and the P3/T0 JSON Lines: long code answers, long roleplay,
# short QA answers and a homogeneous blob, as real ingests see.
SOURCES = [
    ("alpaca_5000.json", "alpaca"),
    ("codegen-instruct.json", "gpteacher_code"),
    ("code_alpaca_2k.json", "code_alpaca"),
    ("roleplay-*.json", "gpteacher_roleplay"),
    ("dummy_conversation.json", "fastchat_identity"),
    ("t0_train_50k_data_per_template/*.jsonl", "t0"),
]

RAW_BASELINE = """
import sys, duckdb
con = duckdb.connect(sys.argv[1])
con.execute("CREATE TABLE raw AS SELECT * FROM read_json(?, format='newline_delimited')", [sys.argv[2]])
con.close()
"""

# --floor: the raw baseline plus the two content hashes every pair gets (as storage/pairs.py's
# insert computes them, with the schema's own normalize_text): the least any ingest that
# keeps them can take in DuckDB, without line numbers, ids, format rules or rejects.
RAW_WITH_HASHES = """
import sys
sys.path.insert(0, sys.argv[3])
import storage
con = storage.connect(sys.argv[1])
con.execute(
    "CREATE TABLE raw AS SELECT *, md5_number_lower(normalize_text(prompt)) AS prompt_hash, "
    "md5_number_lower(normalize_text(prompt) || chr(31) || normalize_text(response)) AS pair_hash "
    "FROM read_json(?, format='newline_delimited')", [sys.argv[2]])
con.close()
"""


# --- building the input file ------------------------------------------------------------


def read_records(path: Path) -> list:
    """Every record of a JSON array file or a JSON Lines file."""
    data = path.read_bytes()
    if data.lstrip()[:1] == b"[":
        return orjson.loads(data)
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def to_gpt4all(record: object, source: str) -> dict | None:
    """A record of any supported format as one GPT4All record, or None if curator would reject it.

    Going through curator's own format layer guarantees every generated row is accepted, so
    the pairs count can be checked against --rows exactly.
    """
    fmt = formats.detect_format(record)
    if fmt is None:
        return None
    try:
        pair = formats.record_pairs(record, fmt)[-1]
    except formats.RecordError:
        return None
    return {"prompt": pair.prompt, "response": pair.response, "source": source}


def _dedup_key(prompt: str) -> str:
    # Close to the SQL normalize_text (lower case, whitespace runs collapsed): prompts equal
    # under it would make exact duplicates, which the file should not have.
    return re.sub(r"\s+", " ", prompt.strip()).lower()


def load_pool(data_dir: Path, sources=SOURCES) -> list[dict]:
    """Distinct real rows from every source, shuffled so that sources interleave in the file."""
    pool, seen = [], set()
    for pattern, name in sources:
        paths = sorted(data_dir.glob(pattern))
        if not paths:
            raise SystemExit(f"no {pattern} under {data_dir} (point --data at the shared data folder)")
        for path in paths:
            source = f"{name}/{path.stem}" if name == "t0" else name
            for record in read_records(path):
                row = to_gpt4all(record, source)
                if row is None or _dedup_key(row["prompt"]) in seen:
                    continue
                seen.add(_dedup_key(row["prompt"]))
                pool.append(row)
    random.Random(SEED).shuffle(pool)
    return pool


def generated_rows(pool: list[dict], rows: int):
    """rows rows: the pool as is, then again with " (variant N)" on each prompt, and so on."""
    for n in range(rows):
        cycle, row = divmod(n, len(pool))
        base = pool[row]
        if cycle == 0:
            yield base
        else:
            yield {**base, "prompt": f"{base['prompt']} (variant {cycle})"}


def build_input(rows: int, data_dir: Path) -> Path:
    """The cached input file for this row count, built first if missing."""
    path = OUT_DIR / f"ingest_{rows}_v{BUILD_VERSION}.jsonl"
    if path.exists():
        return path
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    pool = load_pool(data_dir)
    partial = path.with_suffix(".jsonl.partial")  # renamed when complete: no half file is cached
    with open(partial, "wb") as out:
        for row in generated_rows(pool, rows):
            out.write(orjson.dumps(row) + b"\n")
    partial.rename(path)
    return path


def warm_page_cache(path: Path) -> None:
    """Read the file once so that neither measured command pays for the cold read alone."""
    with open(path, "rb") as f:
        while f.read(16 << 20):
            pass


# --- measuring ----------------------------------------------------------------------------


@dataclass
class Run:
    name: str
    repeat: int
    seconds: float
    cpu_seconds: float  # user + system of the child: > seconds means it used several cores
    peak_rss_mib: float
    rows_per_s: float
    mb_per_s: float  # input file megabytes (10^6 bytes) per second
    exit_code: int


def run_measured(argv: list[str], log_path: Path) -> tuple[float, float, float, int]:
    """(wall seconds, CPU seconds, peak RSS MiB, exit code) of one child process."""
    with open(log_path, "wb") as log:
        start = time.perf_counter()
        child = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
        # wait4, not Popen.wait: it hands back this child's own rusage (ru_maxrss in KiB).
        _, status, usage = os.wait4(child.pid, 0)
        seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)  # reaped: keep Popen from waiting again
    return seconds, usage.ru_utime + usage.ru_stime, usage.ru_maxrss / 1024, child.returncode


def curator_command(db: Path, input_path: Path) -> list[str]:
    script = Path(sys.executable).with_name("curator")
    curator = str(script) if script.exists() else shutil.which("curator") or "curator"
    return [curator, "--db", str(db), "ingest", str(input_path)]


def raw_command(db: Path, input_path: Path, with_hashes: bool = False) -> list[str]:
    if with_hashes:
        return [sys.executable, "-c", RAW_WITH_HASHES, str(db), str(input_path), str(ROOT)]
    return [sys.executable, "-c", RAW_BASELINE, str(db), str(input_path)]


def measure(name: str, repeat: int, argv: list[str], work: Path, rows: int, size: int) -> Run:
    seconds, cpu, rss, code = run_measured(argv, work / f"{name}_{repeat}.log")
    if code != 0:
        tail = (work / f"{name}_{repeat}.log").read_text(errors="replace")[-3000:]
        print(f"{name} run {repeat} exited with {code}:\n{tail}", file=sys.stderr)
    return Run(
        name,
        repeat,
        round(seconds, 3),
        round(cpu, 3),
        round(rss, 1),
        round(rows / seconds),
        round(size / 1e6 / seconds, 2),
        code,
    )


def count_rows(db: Path, table: str) -> tuple[int, int]:
    """(rows, rows beyond the first of each content hash) of a table, read-only."""
    con = duckdb.connect(str(db), read_only=True)
    try:
        if table == "pairs":
            return con.execute("SELECT count(*), count(*) - count(DISTINCT pair_hash) FROM pairs").fetchone()
        return con.execute(f"SELECT count(*), 0 FROM {table}").fetchone()
    finally:
        con.close()


def remove_db(db: Path) -> None:
    for path in (db, db.with_name(db.name + ".wal")):
        path.unlink(missing_ok=True)


def run_all(input_path: Path, rows: int, repeat: int, floor: bool = False) -> tuple[list[Run], dict]:
    """Interleaved runs (curator, raw[, raw+hashes], curator, ...), each into a fresh database."""
    size = input_path.stat().st_size
    runs, checks = [], {}
    with tempfile.TemporaryDirectory(prefix="curator-bench-") as tmp:
        work = Path(tmp)
        for i in range(1, repeat + 1):
            db = work / "curator.duckdb"
            runs.append(measure("curator", i, curator_command(db, input_path), work, rows, size))
            if runs[-1].exit_code == 0:
                checks["pairs"], checks["pair_duplicates"] = count_rows(db, "pairs")
            checks["curator_db_mib"] = round(db.stat().st_size / 2**20, 1) if db.exists() else None
            remove_db(db)
            db = work / "raw.duckdb"
            runs.append(measure("raw", i, raw_command(db, input_path), work, rows, size))
            if runs[-1].exit_code == 0:
                checks["raw_rows"], _ = count_rows(db, "raw")
            checks["raw_db_mib"] = round(db.stat().st_size / 2**20, 1) if db.exists() else None
            remove_db(db)
            if floor:
                db = work / "floor.duckdb"
                runs.append(measure("raw+hashes", i, raw_command(db, input_path, with_hashes=True), work, rows, size))
                remove_db(db)
    return runs, checks


# --- reporting ----------------------------------------------------------------------------


def summarize(runs: list[Run]) -> dict:
    """Median time per command (robust to one slow run), maximum peak RSS, and the ratio."""
    summary = {}
    for name in ("curator", "raw"):
        mine = [r for r in runs if r.name == name]
        summary[name] = {
            "seconds": round(statistics.median(r.seconds for r in mine), 3),
            "peak_rss_mib": max(r.peak_rss_mib for r in mine),
        }
    summary["speed_ratio"] = round(summary["raw"]["seconds"] / summary["curator"]["seconds"], 3)
    floor = [r.seconds for r in runs if r.name == "raw+hashes"]
    if floor:
        summary["raw+hashes"] = {"seconds": round(statistics.median(floor), 3)}
        summary["floor_ratio"] = round(summary["raw"]["seconds"] / summary["raw+hashes"]["seconds"], 3)
    return summary


def print_table(runs: list[Run], mb_label: str = "MB/s") -> None:
    columns = ["command", "run", "seconds", "rows/s", mb_label, "cpu s", "peak RSS MiB", "exit"]
    cells = [
        [
            r.name,
            str(r.repeat),
            f"{r.seconds:.2f}",
            f"{r.rows_per_s:,}",
            f"{r.mb_per_s:.1f}",
            f"{r.cpu_seconds:.2f}",
            f"{r.peak_rss_mib:,.0f}",
            str(r.exit_code),
        ]
        for r in runs
    ]
    print_cells(columns, cells)


def print_cells(columns: list[str], cells: list[list[str]]) -> None:
    """A right-aligned plain-text table (bench/layout.py prints with it too)."""
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    print("  ".join("-" * w for w in widths))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows in the input file")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command, interleaved")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also time raw read_json plus curator's two content hashes (see RAW_WITH_HASHES)",
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared real-data folder")
    args = parser.parse_args()
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    return args


def main() -> int:
    args = parse_args()
    start = time.perf_counter()
    input_path = build_input(args.rows, args.data)
    size = input_path.stat().st_size
    print(
        f"input  {input_path}: {args.rows:,} rows, {size / 1e6:,.1f} MB (ready in {time.perf_counter() - start:.1f} s)"
    )
    warm_page_cache(input_path)
    runs, checks = run_all(input_path, args.rows, args.repeat, args.floor)
    print_table(runs)
    failed = any(r.exit_code != 0 for r in runs)
    summary = summarize(runs) if not failed else {}
    if summary:
        print(
            f"curator speed as a fraction of raw DuckDB read_json: {summary['speed_ratio']:.2f}x "
            f"(raw {summary['raw']['seconds']:.2f} s / curator {summary['curator']['seconds']:.2f} s; "
            "goal >= 0.5x)"
        )
        if "floor_ratio" in summary:
            print(
                f"raw read_json plus the content hashes alone: {summary['floor_ratio']:.2f}x raw "
                f"({summary['raw+hashes']['seconds']:.2f} s): the most any ingest that keeps them could reach"
            )
    ok = not failed and checks.get("pairs") == args.rows and checks.get("raw_rows") == args.rows
    print(
        f"check  pairs {checks.get('pairs')}, expected {args.rows:,} "
        f"({checks.get('pair_duplicates')} exact duplicates); raw rows {checks.get('raw_rows')}; "
        f"db size curator {checks.get('curator_db_mib')} MiB, raw {checks.get('raw_db_mib')} MiB: "
        + ("OK" if ok else "MISMATCH")
    )
    if args.json:
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "input": str(input_path),
                    "input_bytes": size,
                    "runs": [asdict(r) for r in runs],
                    "summary": summary,
                    "checks": checks,
                    "ok": ok,
                }
            )
        )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
