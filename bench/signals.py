"""Signals benchmark: the signals job's pairs/s against a raw read-and-tokenize baseline.

    .venv/bin/python bench/signals.py                  # 20,000 pairs of real shared rows
    .venv/bin/python bench/signals.py --rows 100000 --json

The input is bench/ingest.py's GPT4All file of real rows (Alpaca, GPTeacher, Code Alpaca,
FastChat, P3), ingested into a fresh database first (not timed). Then, in one process:

- raw: read every pair's prompt and response out of DuckDB and count the tokens of
  prompt + "\\n" + response with the same Rust tokenizer (batch encoder, every core): the
  least any token count over the data can cost;
- job: `jobs.signals.compute_signals` on the same database (reading, chat-template
  rendering, tokenizing, refusal/truncation/malformed/PII rules, language identification,
  writing and committing the rows);
- stages: each part of the job timed alone on the same texts, in CPU seconds per 1,000
  pairs (the machine may be shared; CPU time says what the work costs).

It prints pairs/s of both, the ratio job/raw, the stages, an extrapolation to 1M pairs and
the peak RSS.
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import storage  # noqa: E402
from bench.ingest import DEFAULT_DATA, build_input  # noqa: E402
from curator import chat_tokens, language  # noqa: E402
from curator.signals import SignalParams, text_signals  # noqa: E402
from jobs.ingest import IngestOptions, ingest  # noqa: E402
from jobs.signals import compute_signals  # noqa: E402


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _stages(
    prompts: list[str], responses: list[str], tokenizer: chat_tokens.ChatTokenizer, params: SignalParams
) -> dict[str, float]:
    """CPU seconds per 1,000 pairs of each part of the job, run alone."""
    per_k = 1000 / len(prompts)
    costs = {}
    steps = [
        ("text rules", lambda: text_signals(prompts, responses, [None] * len(prompts), params)),
        ("language", lambda: language.identify(responses, params.lang_min_letters, params.lang_min_confidence)),
    ]
    rendered: list = []
    steps.append(
        (
            "template render",
            lambda: rendered.extend(
                tokenizer.render_all([chat_tokens.conversation(p, r, None) for p, r in zip(prompts, responses)])
            ),
        )
    )
    steps.append(("tokenize", lambda: tokenizer.count_rendered(*rendered)))
    for name, step in steps:
        started = _cpu()
        step()
        costs[name] = round((_cpu() - started) * per_k, 3)
    return costs


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    source = build_input(args.rows, DEFAULT_DATA)
    params = SignalParams()
    tokenizer = chat_tokens.load(params.tokenizer)
    with tempfile.TemporaryDirectory() as work:
        db = Path(work) / "signals.duckdb"
        ingest(storage.Database(db), [source], IngestOptions())
        con = storage.connect(db)
        tokenizer.tokenizer.encode_batch_fast(["warm-up"] * 64)

        started, cpu = time.perf_counter(), _cpu()
        table = con.execute("SELECT prompt, response FROM pairs").to_arrow_table()
        prompts, responses = table.column("prompt").to_pylist(), table.column("response").to_pylist()
        tokenizer.tokenizer.encode_batch_fast(
            [p + "\n" + r for p, r in zip(prompts, responses)], add_special_tokens=False
        )
        raw_seconds, raw_cpu = time.perf_counter() - started, _cpu() - cpu
        con.close()

        started, cpu = time.perf_counter(), _cpu()
        report = compute_signals(storage.Database(db), params)
        job_seconds, job_cpu = time.perf_counter() - started, _cpu() - cpu
    stages = _stages(prompts, responses, tokenizer, params)
    pairs = len(prompts)
    figures = {
        "pairs": pairs,
        "tokenizer": report.tokenizer,
        "raw_seconds": round(raw_seconds, 2),
        "raw_pairs_per_s": round(pairs / raw_seconds),
        "raw_cpu_seconds": round(raw_cpu, 2),
        "job_seconds": round(job_seconds, 2),
        "job_pairs_per_s": round(pairs / job_seconds),
        "job_cpu_seconds": round(job_cpu, 2),
        "ratio": round(raw_seconds / job_seconds, 3),
        "job_minutes_per_million": round(job_seconds / pairs * 1e6 / 60, 1),
        "stage_cpu_seconds_per_1000_pairs": stages,
        "counts": report.summary["counts"],
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(f"{pairs:,} pairs, tokens under the {report.tokenizer} chat template")
    print(f"raw read + tokenize  {raw_seconds:8.2f} s  {pairs / raw_seconds:10,.0f} pairs/s  (cpu {raw_cpu:.1f} s)")
    print(f"signals job          {job_seconds:8.2f} s  {pairs / job_seconds:10,.0f} pairs/s  (cpu {job_cpu:.1f} s)")
    print(
        f"job / raw: {figures['ratio']:.2f}x; 1M pairs: ~{figures['job_minutes_per_million']} min; "
        f"peak RSS {figures['peak_rss_mib']:,} MiB"
    )
    print("cpu s per 1,000 pairs: " + ", ".join(f"{k} {v}" for k, v in stages.items()))
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
