"""Export benchmark: `curator export` against a raw DuckDB COPY of the same rows, same run.

    .venv/bin/python bench/export.py                      # 500,000 pairs, one run of each
    .venv/bin/python bench/export.py --repeat 3 --json    # three interleaved runs, plus JSON
    .venv/bin/python bench/export.py --rows 20000         # a CI-size smoke run

What it does:

1. Takes the first --rows lines of bench/out/ingest_1000000_v1.jsonl (bench/ingest.py builds
   it from ../shared/data when missing) into bench/out/export_ROWS_v1.jsonl, and ingests that
   once with `curator ingest` into bench/out/export_ROWS_v1.duckdb (reused by later runs).
2. Times, as child processes, interleaved:
   - `curator export DIR --no-eval-check` (gpt4all format, 5% validation split, seed 42:
     selection, leak-free split, seeded order, JSON per record, sha256 of every file, manifest);
   - the raw baseline: `COPY (SELECT prompt, response, source FROM pairs WHERE deleted_op IS
     NULL) TO 'x.jsonl' (FORMAT json)` in a Python child on a read-only connection;
   - with --eval-check, also `curator export` with the default contamination check against the
     252 Self-Instruct prompts ($CURATOR_EVAL_SET = ../shared/data/...): the database has no
     stored prompt vectors, so this is the first-pass path plus loading the embedding model.
3. Prints seconds, rows/s, MB/s written, CPU seconds and peak RSS of each run, the ratio
   raw seconds / curator seconds (goal >= 0.5x), and checks that every export wrote --rows
   records and that repeated exports are byte-identical (train, val and manifest sha256).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` and `curator` importable

from bench import ingest as ingest_bench  # noqa: E402  (after the path fix above)

BUILD_VERSION = 1
SOURCE_ROWS = 1_000_000

RAW_BASELINE = """
import sys, duckdb
con = duckdb.connect(sys.argv[1], read_only=True)
con.execute("COPY (SELECT prompt, response, source FROM pairs WHERE deleted_op IS NULL) TO ? (FORMAT json)",
            [sys.argv[2]])
con.close()
"""


def build_database(rows: int, data_dir: Path) -> Path:
    """bench/out/export_ROWS_v1.duckdb holding exactly `rows` pairs, built once."""
    db = ingest_bench.OUT_DIR / f"export_{rows}_v{BUILD_VERSION}.duckdb"
    ready = db.with_suffix(".ready")
    if ready.exists():
        return db
    if rows > SOURCE_ROWS:
        raise SystemExit(f"--rows is at most {SOURCE_ROWS:,} (the slice comes from the 1M ingest file)")
    source = ingest_bench.build_input(SOURCE_ROWS, data_dir)
    sliced = ingest_bench.OUT_DIR / f"export_{rows}_v{BUILD_VERSION}.jsonl"
    with open(source, "rb") as full, open(sliced, "wb") as out:
        for _, line in zip(range(rows), full):
            out.write(line)
    ingest_bench.remove_db(db)
    seconds, _, _, code = ingest_bench.run_measured(
        ingest_bench.curator_command(db, sliced), ingest_bench.OUT_DIR / "export_ingest.log"
    )
    if code != 0:
        raise SystemExit(f"ingest failed; see {ingest_bench.OUT_DIR / 'export_ingest.log'}")
    print(f"built  {db} from {sliced} in {seconds:.1f} s")
    ready.touch()
    return db


# Runs are bench/ingest.py's Run; mb_per_s is megabytes (10^6 bytes) written per second here.
Run = ingest_bench.Run


def curator_export(db: Path, out: Path) -> list[str]:
    command = ingest_bench.curator_command(db, out)
    return command[:3] + ["export", str(out), "--format", "gpt4all", "--val-fraction", "0.05", "--seed", "42"]


def file_digests(out: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(out.iterdir())}


def measure(
    name: str, repeat: int, argv: list[str], work: Path, rows: int, written: callable, env: dict | None = None
) -> Run:
    log = work / f"{name}_{repeat}.log"
    saved = os.environ.copy()
    os.environ.update(env or {})
    try:
        seconds, cpu, rss, code = ingest_bench.run_measured(argv, log)
    finally:
        os.environ.clear()
        os.environ.update(saved)
    if code != 0:
        print(f"{name} run {repeat} exited with {code}:\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
    size = written() if code == 0 else 0
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


def count_lines(paths: list[Path]) -> int:
    total = 0
    for path in paths:
        with open(path, "rb") as f:
            total += sum(chunk.count(b"\n") for chunk in iter(lambda: f.read(16 << 20), b""))
    return total


def run_all(db: Path, rows: int, repeat: int, eval_check: bool, data_dir: Path) -> tuple[list[Run], dict]:
    runs, checks, digests = [], {"records": {}}, {}
    eval_env = {"CURATOR_EVAL_SET": str(data_dir / "user_oriented_instructions.jsonl")}
    with tempfile.TemporaryDirectory(prefix="curator-bench-export-", dir=ingest_bench.OUT_DIR) as tmp:
        work = Path(tmp)
        for i in range(1, repeat + 1):
            plans = [
                ("curator", curator_export(db, work / "out") + ["--no-eval-check"], None),
                ("raw", [sys.executable, "-c", RAW_BASELINE, str(db), str(work / "raw" / "x.jsonl")], None),
            ]
            if eval_check:
                plans.append(("curator+eval", curator_export(db, work / "out"), eval_env))
            for name, argv, env in plans:
                target = work / ("raw" if name == "raw" else "out")
                shutil.rmtree(target, ignore_errors=True)
                target.mkdir()
                files = lambda: [p for p in target.iterdir() if p.suffix == ".jsonl"]  # noqa: E731, B023 (called in this iteration)
                runs.append(measure(name, i, argv, work, rows, lambda: sum(p.stat().st_size for p in files()), env))  # noqa: B023 (called in measure)
                if runs[-1].exit_code == 0:
                    checks["records"][f"{name}_{i}"] = count_lines(files())
                    if name == "curator":
                        digests[i] = file_digests(target)
    checks["identical_across_runs"] = len(set(map(json.dumps, digests.values()))) == 1 if len(digests) > 1 else None
    return runs, checks


def summarize(runs: list[Run]) -> dict:
    summary = {}
    for name in sorted({r.name for r in runs}):
        mine = [r for r in runs if r.name == name]
        summary[name] = {
            "seconds": round(statistics.median(r.seconds for r in mine), 3),
            "cpu_seconds": round(statistics.median(r.cpu_seconds for r in mine), 3),
            "peak_rss_mib": max(r.peak_rss_mib for r in mine),
        }
    for name in [n for n in summary if n != "raw"]:
        summary[f"{name}_speed_ratio"] = round(summary["raw"]["seconds"] / summary[name]["seconds"], 3)
    return summary


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=500_000, help="pairs in the database")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command, interleaved")
    parser.add_argument(
        "--eval-check", action="store_true", help="also time an export with the default contamination check"
    )
    parser.add_argument("--json", action="store_true", help="also print the figures as one JSON object")
    parser.add_argument("--data", type=Path, default=ingest_bench.DEFAULT_DATA, help="the shared real-data folder")
    args = parser.parse_args()
    if args.rows < 1 or args.repeat < 1:
        parser.error("--rows and --repeat must be at least 1")
    db = build_database(args.rows, args.data)
    print(f"input  {db}: {args.rows:,} pairs, {db.stat().st_size / 2**20:,.0f} MiB")
    ingest_bench.warm_page_cache(db)
    runs, checks = run_all(db, args.rows, args.repeat, args.eval_check, args.data)
    ingest_bench.print_table(runs, mb_label="MB/s out")
    failed = any(r.exit_code != 0 for r in runs)
    summary = {} if failed else summarize(runs)
    for name in ("curator", "curator+eval"):
        if f"{name}_speed_ratio" in summary:
            print(
                f"{name} speed as a fraction of raw DuckDB COPY: {summary[f'{name}_speed_ratio']:.2f}x "
                f"(raw {summary['raw']['seconds']:.2f} s / {name} {summary[name]['seconds']:.2f} s; goal >= 0.5x)"
            )
    ok = (
        not failed
        and all(n == args.rows for n in checks["records"].values())
        and checks["identical_across_runs"] is not False
    )
    print(
        f"check  records written {sorted(set(checks['records'].values()))}, expected {args.rows:,}; "
        f"repeated exports byte-identical: {checks['identical_across_runs']}: " + ("OK" if ok else "MISMATCH")
    )
    if args.json:
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "database": str(db),
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
