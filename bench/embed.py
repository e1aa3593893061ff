"""Embedding benchmark: the embed job's texts/s against a raw encode of the same texts.

    .venv/bin/python bench/embed.py                 # 20,000 prompts, exact model (ONNX on CPU)
    .venv/bin/python bench/embed.py --fast          # the static model2vec path
    .venv/bin/python bench/embed.py --rows 5000

Both sides use the same loaded encoder (same backend, same batch size) in the same process:
the raw side is `encoder.encode(texts)` on the texts the job will embed; the job side is
`jobs.embed.embed` on a fresh database holding those pairs (reading texts from DuckDB,
encoding, writing shards, committing). The goal is job >= 0.9x raw. The texts are prompts
of real shared rows (bench/ingest.py builds the file).
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
from curator import embedding  # noqa: E402
from jobs.embed import embed  # noqa: E402
from jobs.ingest import IngestOptions, ingest  # noqa: E402
from storage import embeddings as vector_rows  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--fast", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    source = build_input(args.rows, DEFAULT_DATA)
    encoder = embedding.load_encoder(fast=args.fast)
    with tempfile.TemporaryDirectory() as work:
        db = Path(work) / "embed.duckdb"
        ingest(storage.Database(db), [source], IngestOptions())
        con = storage.connect(db)
        _, prompts, _ = vector_rows.pair_texts(con, con.execute("SELECT id FROM pairs ORDER BY id").fetchnumpy()["id"])
        con.close()
        encoder.encode(prompts[:256])  # warm-up: first-call costs are no one's throughput

        started = time.perf_counter()
        encoder.encode(prompts)
        raw_seconds = time.perf_counter() - started

        report = embed(storage.Database(db), encoder=encoder)
    raw_rate = len(prompts) / raw_seconds
    figures = {
        "model": encoder.name,
        "backend": encoder.backend,
        "texts": len(prompts),
        "raw_seconds": round(raw_seconds, 2),
        "raw_texts_per_s": round(raw_rate),
        "job_seconds": round(report.seconds, 2),
        "job_texts_per_s": round(report.texts_per_s),
        "ratio": round(report.texts_per_s / raw_rate, 3),
        "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }
    print(f"{encoder.name} ({encoder.backend}), {len(prompts):,} prompts")
    print(f"raw encode  {raw_seconds:8.2f} s  {raw_rate:10,.0f} texts/s")
    print(f"embed job   {report.seconds:8.2f} s  {report.texts_per_s:10,.0f} texts/s")
    print(f"job / raw: {figures['ratio']:.2f}x (goal >= 0.9x); peak RSS {figures['peak_rss_mib']:,} MiB")
    if args.json:
        print(json.dumps(figures))
    return 0


if __name__ == "__main__":
    sys.exit(main())
