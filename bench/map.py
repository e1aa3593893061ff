"""Map benchmark: ingest -> embed -> map end to end, each stage a `curator` child process.

Run it from the project root (`make bench` runs the default) or directly:

    .venv/bin/python bench/map.py --rows 100000 --mix instructions   # exact model (goal <= 10 min)
    .venv/bin/python bench/map.py --rows 1000000 --fast              # model2vec (goal <= 15 min, <= 8 GiB)
    .venv/bin/python bench/map.py --rows 5000 --json                 # a smoke run

What it does:

1. Builds the input file with bench/ingest.py's builder (real records from ../shared/data,
   cycled with " (variant N)" so every row is a distinct pair), under bench/out/.
   `--mix ingest` is bench/ingest.py's mix: about 80% P3/T0 template prompts, which run up to
   MiniLM's 256-token limit. `--mix instructions` leaves out T0: Alpaca, GPTeacher, Code Alpaca,
   roleplay, ShareGPT and OpenAssistant prompts, closer to what people distill and fine-tune on.
2. Runs `curator ingest`, `curator embed [--fast]` and `curator map [--fast]` on a fresh
   database, one child process each, and reports per stage the wall time, CPU time and the
   child's own peak RSS (os.wait4), then the total and the largest peak.
3. Runs the raw baseline of the costliest stage in the same run: `model.encode` of a sample of
   the same prompts with the same encoder (the embed job's overhead is bench/embed.py's subject;
   here the sample rate tells how much of the embed stage is the model itself), and prints the
   stage's texts/s against it.

The goals (issue 3): 100k pairs with the exact model in <= 10 min; 1M with --fast in <= 15 min
and <= 8 GiB peak RSS, on a 2-core machine. Exit status 0 when every stage succeeded.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` and `curator` importable

from bench import ingest as ingest_bench  # noqa: E402  (after the path fix above)

# Sources of --mix instructions: bench/ingest.py's list without T0, plus the real user prompts
# of ShareGPT and OpenAssistant.
INSTRUCTION_SOURCES = [s for s in ingest_bench.SOURCES if s[1] != "t0"] + [
    ("ShareGPT_V3_filtered_500.json", "sharegpt"),
    ("sg_90k_part1_html_cleaned_lang_first_sampled_sorted.json", "sharegpt"),
    ("oasst2_filtered.jsonl", "oasst2"),
]


@dataclass
class Stage:
    name: str
    seconds: float
    cpu_seconds: float
    peak_rss_mib: float
    exit_code: int


def build_input(rows: int, mix: str, data_dir: Path) -> Path:
    if mix == "ingest":
        return ingest_bench.build_input(rows, data_dir)
    path = ingest_bench.OUT_DIR / f"map_{mix}_{rows}_v{ingest_bench.BUILD_VERSION}.jsonl"
    if not path.exists():
        pool = ingest_bench.load_pool(data_dir, INSTRUCTION_SOURCES)
        ingest_bench.OUT_DIR.mkdir(parents=True, exist_ok=True)
        partial = path.with_suffix(".jsonl.partial")
        with open(partial, "wb") as out:
            for row in ingest_bench.generated_rows(pool, rows):
                out.write(json.dumps(row, ensure_ascii=False).encode() + b"\n")
        partial.rename(path)
    return path


def run_stage(name: str, args: list[str], db: Path, work: Path) -> Stage:
    argv = ingest_bench.curator_command(db, Path("-"))[:3] + args  # [curator, --db, DB] + args
    seconds, cpu, rss, code = ingest_bench.run_measured(argv, work / f"{name}.log")
    stage = Stage(name, seconds, cpu, rss, code)
    print(
        f"{name:<7} {seconds:8.1f} s  cpu {cpu:8.1f} s  peak RSS {rss / 1024:5.2f} GiB"
        + ("" if code == 0 else f"  FAILED (exit {code}, log {work / f'{name}.log'})"),
        flush=True,
    )
    return stage


def raw_encode_rate(input_path: Path, fast: bool, sample: int) -> float:
    """Texts/s of the bare encoder on a random sample of the file's prompts."""
    from curator import embedding

    with open(input_path, "rb") as f:
        prompts = [json.loads(line)["prompt"] for line in f]
    texts = random.Random(0).sample(prompts, min(sample, len(prompts)))
    encoder = embedding.load_encoder(None, fast=fast)
    encoder.encode(texts[:64])  # warm up: first-call allocations are not throughput
    start = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--mix", choices=["instructions", "ingest"], default="instructions")
    parser.add_argument("--fast", action="store_true", help="model2vec static embeddings (curator --fast)")
    parser.add_argument("--sample", type=int, default=2000, help="texts for the raw encoder baseline")
    parser.add_argument("--data", type=Path, default=ingest_bench.DEFAULT_DATA)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()

    input_path = build_input(args.rows, args.mix, args.data)
    print(f"input {input_path} ({args.rows:,} rows, mix {args.mix}, {'fast' if args.fast else 'exact'} model)")
    fast = ["--fast"] if args.fast else []
    stages = []
    with tempfile.TemporaryDirectory(prefix="curator-bench-map-") as tmp:
        work = Path(tmp)
        db = work / "bench.duckdb"
        for name, stage_args in (
            ("ingest", ["ingest", str(input_path)]),
            ("embed", ["embed", *fast]),
            ("map", ["map", *fast]),
        ):
            stages.append(run_stage(name, stage_args, db, work))
            if stages[-1].exit_code != 0:
                return 1
    total = sum(s.seconds for s in stages)
    peak = max(s.peak_rss_mib for s in stages)
    embed = next(s for s in stages if s.name == "embed")
    raw_rate = raw_encode_rate(input_path, args.fast, args.sample)
    job_rate = args.rows / embed.seconds
    print(f"total   {total:8.1f} s  ({total / 60:.1f} min)  largest peak RSS {peak / 1024:.2f} GiB")
    print(
        f"embed stage {job_rate:,.0f} texts/s (model load included); raw encode of {args.sample:,} "
        f"sampled prompts {raw_rate:,.0f} texts/s -> ratio {job_rate / raw_rate:.2f}x"
    )
    if args.json:
        print(
            json.dumps(
                {
                    "rows": args.rows,
                    "mix": args.mix,
                    "fast": args.fast,
                    "stages": [asdict(s) for s in stages],
                    "total_seconds": total,
                    "peak_rss_mib": peak,
                    "embed_texts_per_s": job_rate,
                    "raw_encode_texts_per_s": raw_rate,
                },
                indent=2,
            )
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
