"""`curator embed --ray` against the local job on the same pairs (needs the ray extra).

    .venv/bin/python bench/ray.py                  # 2,000 Alpaca prompts
    .venv/bin/python bench/ray.py --rows 5000

Each run is a child process on a fresh copy of one ingested database, timed end to end
(start-up, model loading, Ray's start included): the local job (the raw baseline: one process,
ONNX on both cores), then `--ray --workers 1` and `--ray --workers 2` on a local Ray instance.
Prints seconds, texts/s, the ratio local / Ray (> 1: Ray is faster), whether the vectors equal
the local job's (least cosine), Ray's start-up alone, and the installed size of the extra.
"""
from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # in place of bench/, where this file's own name would shadow the ray package

import storage  # noqa: E402
from storage import embeddings as vector_rows  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "ray"
CURATOR = str(Path(sys.executable).with_name("curator"))


def vectors(db: Path) -> tuple[np.ndarray, np.ndarray]:
    con = storage.connect_read_only(db)
    try:
        return vector_rows.load_vectors(con, 1)
    finally:
        con.close()


def alpaca_records(n: int):
    """The first n Alpaca records, cycled past 5,000 with " (variant K)" on the instruction."""
    records = json.loads((DATA / "alpaca_5000.json").read_text())
    for i in range(n):
        record = records[i % len(records)]
        suffix = f" (variant {i // len(records)})" if i >= len(records) else ""
        yield {**record, "instruction": record["instruction"] + suffix}


def timed_embed(template: Path, name: str, *extra: str) -> tuple[float, Path]:
    db = OUT / f"{name}.duckdb"
    for stale in OUT.glob(f"{name}.duckdb*"):
        shutil.rmtree(stale) if stale.is_dir() else stale.unlink()
    shutil.copyfile(template, db)
    started = time.monotonic()
    result = subprocess.run([CURATOR, "--db", str(db), "embed", *extra], capture_output=True, text=True)
    seconds = time.monotonic() - started
    if result.returncode:
        raise SystemExit(f"curator embed {' '.join(extra)} failed:\n{result.stderr}")
    return seconds, db


def ray_start_seconds() -> float:
    code = ("import time, ray; t = time.monotonic(); ray.init(address='local', num_cpus=2, include_dashboard=False, "
            "_node_ip_address='127.0.0.1', log_to_driver=False); print(time.monotonic() - t); ray.shutdown()")
    return float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
                 .stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=2000)
    args = parser.parse_args()
    import ray  # noqa: F401  (fails here, clearly, without the extra)

    OUT.mkdir(parents=True, exist_ok=True)
    source = OUT / f"alpaca_{args.rows}.json"
    source.write_text(json.dumps(list(alpaca_records(args.rows))))
    template = OUT / f"template_{args.rows}.duckdb"
    if not template.exists():
        subprocess.run([CURATOR, "--db", str(template), "ingest", str(source)], check=True, capture_output=True)
    local_s, local_db = timed_embed(template, "local")
    reference = vectors(local_db)
    rows = [("local job (raw baseline)", local_s, None)]
    for workers in (1, 2):
        seconds, db = timed_embed(template, f"ray{workers}", "--ray", "--workers", str(workers))
        ids, got = vectors(db)
        assert np.array_equal(ids, reference[0])
        rows.append((f"--ray --workers {workers}", seconds, float(np.sum(got * reference[1], axis=1).min())))
    print(f"{args.rows:,} prompts, all-MiniLM-L6-v2 (ONNX), 2 cores, end to end:")
    for name, seconds, cosine in rows:
        same = "" if cosine is None else f", least cosine to local {cosine:.6f}"
        print(f"  {name:<26} {seconds:6.1f} s  {args.rows / seconds:6.0f} texts/s  local/this "
              f"{local_s / seconds:.2f}x{same}")
    print(f"  Ray's local start-up alone: {ray_start_seconds():.1f} s")
    size = subprocess.run(["du", "-sm", str(Path(ray.__file__).parent)], capture_output=True, text=True).stdout.split()[0]
    print(f"  the extra's package: ray {ray.__version__}, {size} MB installed")


if __name__ == "__main__":
    main()
