"""The heavy stages on Ray (`--ray`, the ray extra) against the local code, on the same data.

    .venv/bin/python bench/ray.py                       # embed, place, duplicates
    .venv/bin/python bench/ray.py --only place --rows 100000
    .venv/bin/python bench/ray.py --only neighbours     # the sample-fit map against the full fit

Every section runs the local code first (the raw baseline, measured in the same run), then the
same stage on a local Ray instance with 1 and 2 workers, and prints seconds, the ratio
local / Ray (> 1: Ray is faster) and whether the results equal the local ones.

- embed: `curator embed` end to end as a child process on a fresh copy of one ingested
  database (start-up, model loading and Ray's start included): --rows Alpaca prompts
  (default 2,000), all-MiniLM-L6-v2 through ONNX.
- place: placing --rows real texts (default 100,000: distinct prompts and responses of the
  shared data, static fast vectors) with a map fitted on 20,000 of them, i.e. what
  `curator map` does for every point outside its fit sample: curator.projection.place, in
  chunks of 50,000, here or on the workers. Timed after a warm-up on each side (numba's
  compiled code loaded), Ray's start-up separately.
- duplicates: curator.duplicates.near_pairs (the k-NN search of `curator duplicates`) on the
  fast vectors of bench/dedup.py's --rows prompts (default 100,000, full of near-duplicates),
  here on threads or on the workers.
- neighbours (only with --only neighbours, ~10 min): UMAP fitted on all --rows points
  against a full fit with another seed (what two maps of the same data share) and fits on
  seeded samples of 50k, 25k and 10k with the rest placed. For each point, the share of its 10
  nearest neighbours on the full-fit map that it keeps on the other map, and the share of its
  10 nearest neighbours in the vector space that each map keeps.

Also prints Ray's local start-up alone and the installed size of the extra.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path[0] = str(ROOT)  # in place of bench/, where this file's own name would shadow the ray package

import storage  # noqa: E402
from bench import dedup as dedup_bench  # noqa: E402
from bench import ingest as ingest_bench  # noqa: E402
from curator import duplicates, embedding, parallel, projection  # noqa: E402
from storage import embeddings as vector_rows  # noqa: E402

DATA = ROOT.parent / "shared" / "data"
OUT = ROOT / "bench" / "out" / "ray"
CURATOR = str(Path(sys.executable).with_name("curator"))
SECTIONS = ("embed", "place", "duplicates", "neighbours")
PLACE_FIT = 20_000
NEIGHBOURS = 10


# --- embed: the CLI end to end ------------------------------------------------------------


def stored_vectors(db: Path) -> tuple[np.ndarray, np.ndarray]:
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


def bench_embed(rows: int) -> None:
    source = OUT / f"alpaca_{rows}.json"
    source.write_text(json.dumps(list(alpaca_records(rows))))
    template = OUT / f"template_{rows}.duckdb"
    if not template.exists():
        subprocess.run([CURATOR, "--db", str(template), "ingest", str(source)], check=True, capture_output=True)
    local_s, local_db = timed_embed(template, "local")
    reference = stored_vectors(local_db)
    results = [("local job (raw baseline)", local_s, "")]
    for workers in (1, 2):
        seconds, db = timed_embed(template, f"ray{workers}", "--ray", "--workers", str(workers))
        ids, got = stored_vectors(db)
        assert np.array_equal(ids, reference[0])
        results.append(
            (
                f"--ray --workers {workers}",
                seconds,
                f"least cosine to local {float(np.sum(got * reference[1], axis=1).min()):.6f}",
            )
        )
    report(f"embed: {rows:,} prompts, all-MiniLM-L6-v2 (ONNX), `curator embed` end to end", results, rows, "texts")


# --- place and duplicates: the domain loops, here and on the workers -------------------------


def distinct_texts(n: int) -> list[str]:
    """n distinct real texts: the prompts and responses of bench/ingest.py's pool (86,685 of
    them), then as many of their distinct sentences as it takes, shuffled."""
    pool = ingest_bench.load_pool(DATA)
    whole = [t.strip() for row in pool for t in (row["prompt"], row["response"])]
    sentences = [s.strip() for t in whole for s in re.split(r"(?<=[.!?])\s+", t) if len(s.strip()) > 20]
    texts = list(dict.fromkeys(t for t in whole if t))
    known = set(texts)
    texts += list(dict.fromkeys(s for s in sentences if s not in known))[: max(0, n - len(texts))]
    if len(texts) < n:
        raise SystemExit(f"only {len(texts):,} distinct texts in {DATA}")
    random.Random(ingest_bench.SEED).shuffle(texts)
    return texts[:n]


def text_vectors(n: int) -> np.ndarray:
    path = OUT / f"distinct_{n}_fast.npy"
    if not path.exists():
        np.save(path, embedding.load_encoder(fast=True).encode(distinct_texts(n)))
    return np.load(path)


def timed(function):
    started = time.perf_counter()
    result = function()
    return time.perf_counter() - started, result


def on_ray(workers: int, warm_up, run):
    """`run(cluster.map)` on a fresh pool of `workers` actors, after `warm_up(cluster.map)`."""
    from jobs.ray_pool import RayCluster

    cluster = RayCluster(workers=workers)
    try:
        warm_up(cluster.map)
        return timed(lambda: run(cluster.map))
    finally:
        cluster.close()


def bench_place(rows: int) -> None:
    vectors = text_vectors(rows)
    fit_s, (fitted, _) = timed(lambda: projection.fit_projection(vectors, projection.MapParams(fit_sample=PLACE_FIT)))
    tiny = [vectors[:200], vectors[200:400]]

    def warm_up(mapper):
        list(mapper(projection.place_chunk, fitted, tiny))

    warm_up(parallel.serial)
    local_s, local = timed(lambda: projection.place(fitted, vectors))
    results = [("here, chunk after chunk (raw baseline)", local_s, "")]
    for workers in (1, 2):
        seconds, coords = on_ray(workers, warm_up, lambda mapper: projection.place(fitted, vectors, mapper=mapper))
        results.append(
            (
                f"Ray, {workers} worker{'s' * (workers > 1)}",
                seconds,
                "identical coordinates"
                if np.array_equal(coords, local)
                else f"differs by up to {np.abs(coords - local).max():.3g}",
            )
        )
    report(
        f"place: {rows:,} points on a map fitted on {PLACE_FIT:,} (fit {fit_s:.0f} s, here), "
        f"chunks of {projection.PLACE_CHUNK:,}",
        results,
        rows,
        "points",
    )


def bench_duplicates(rows: int) -> None:
    vectors = np.load(dedup_bench.build_vectors(rows, DATA))
    params = duplicates.DuplicateParams()

    def search(mapper=None):
        return duplicates.near_pairs(vectors, params.threshold, params.neighbours, mapper=mapper)

    local_s, local = timed(search)
    results = [("here, threads (raw baseline)", local_s, "")]
    for workers in (1, 2):
        seconds, edges = on_ray(workers, lambda mapper: None, search)
        same = all(np.array_equal(a, b) for a, b in zip(edges, local))
        results.append(
            (
                f"Ray, {workers} worker{'s' * (workers > 1)}",
                seconds,
                f"{'identical' if same else 'DIFFERENT'} edges ({len(edges[0]):,})",
            )
        )
    report(
        f"duplicates: near_pairs on {rows:,} fast vectors (bench/dedup.py's prompts), cosine >= {params.threshold}",
        results,
        rows,
        "vectors",
    )


# --- neighbours: how much the sample fit keeps -------------------------------------------------


def knn_2d(coords: np.ndarray, k: int) -> np.ndarray:
    from sklearn.neighbors import NearestNeighbors

    return NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords, return_distance=False)[:, 1:]


def knn_vectors(vectors: np.ndarray, k: int, block: int = 2048) -> np.ndarray:
    """Exact cosine k-NN (unit rows), all against all in blocks."""
    out = np.empty((len(vectors), k), dtype=np.int64)
    for start in range(0, len(vectors), block):
        sims = vectors[start : start + block] @ vectors.T
        sims[np.arange(len(sims)), np.arange(start, start + len(sims))] = -np.inf
        out[start : start + block] = np.argpartition(-sims, k, axis=1)[:, :k]
    return out


def kept(a: np.ndarray, b: np.ndarray) -> float:
    """Mean share of each row's neighbours in `a` that are among its neighbours in `b`."""
    return float((a[:, :, None] == b[:, None, :]).any(axis=2).mean())


def bench_neighbours(rows: int) -> None:
    vectors = text_vectors(rows)
    truth = knn_vectors(vectors, NEIGHBOURS)
    full_s, (_, full) = timed(lambda: projection.fit_projection(vectors, projection.MapParams(fit_sample=None)))
    full_knn = knn_2d(full, NEIGHBOURS)
    print(f"\nneighbours: {rows:,} distinct real texts (fast vectors); {NEIGHBOURS} nearest neighbours per point")
    print(f"  {'map':<32} {'seconds':>8} {'kept of full-fit map':>21} {'kept of vector space':>21}")
    print(f"  {'UMAP on all points (seed 42)':<32} {full_s:8.0f} {'':>21} {kept(truth, full_knn):21.1%}")
    fits = [("UMAP on all points, seed 7", projection.MapParams(fit_sample=None, seed=7))]
    fits += [
        (f"fit on {sample:,}, rest placed", projection.MapParams(fit_sample=sample))
        for sample in (50_000, 25_000, 10_000)
        if sample < rows
    ]
    for name, params in fits:
        seconds, (_, coords) = timed(lambda: projection.fit_projection(vectors, params))  # noqa: B023 (called by timed)
        other_knn = knn_2d(coords, NEIGHBOURS)
        print(f"  {name:<32} {seconds:8.0f} {kept(full_knn, other_knn):21.1%} {kept(truth, other_knn):21.1%}")


# --- output ----------------------------------------------------------------------------------


def report(title: str, results: list[tuple[str, float, str]], rows: int, unit: str) -> None:
    baseline = results[0][1]
    print(f"\n{title}:")
    for name, seconds, detail in results:
        print(
            f"  {name:<40} {seconds:7.1f} s {rows / seconds:8.0f} {unit}/s  local/this {baseline / seconds:.2f}x"
            f"{'  ' + detail if detail else ''}"
        )


def ray_start_seconds() -> float:
    """The start-up of the local instance `--ray` starts (jobs.ray_pool.connect), in a fresh process."""
    code = (
        "import time, ray; from jobs.ray_pool import connect; t = time.monotonic(); connect(None); "
        "print(time.monotonic() - t); ray.shutdown()"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    return float(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--only", choices=SECTIONS, help="One section (default: embed, place, duplicates).")
    parser.add_argument("--rows", type=int, help="Rows of the section (default: 2,000 to embed, else 100,000).")
    args = parser.parse_args()
    import ray  # fails here, clearly, without the extra

    OUT.mkdir(parents=True, exist_ok=True)
    sections = [args.only] if args.only else SECTIONS[:3]
    for section in sections:
        rows = args.rows or (2_000 if section == "embed" else 100_000)
        {"embed": bench_embed, "place": bench_place, "duplicates": bench_duplicates, "neighbours": bench_neighbours}[
            section
        ](rows)
    if args.only != "neighbours":
        print(f"\nRay's local start-up alone: {ray_start_seconds():.1f} s")
        size = subprocess.run(
            ["du", "-sm", str(Path(ray.__file__).parent)], capture_output=True, text=True
        ).stdout.split()[0]
        print(f"the extra's package: ray {ray.__version__}, {size} MB installed")


if __name__ == "__main__":
    main()
