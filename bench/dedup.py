"""Semantic dedup benchmark: curator's near-duplicate search against pynndescent on the same vectors.

    .venv/bin/python bench/dedup.py                              # 100,000 then 1,000,000 vectors
    .venv/bin/python bench/dedup.py --rows 100000 --exact        # plus the exact all-pairs reference
    .venv/bin/python bench/dedup.py --rows 20000 --job           # plus `curator duplicates` end to end
    .venv/bin/python bench/dedup.py --rows 5000 --json           # a smoke run

What it does, for each --rows N:

1. Vectors: the prompts of the first N rows of bench/ingest.py's input file (real shared rows,
   cycled with " (variant K)" past the pool: the file is full of near-duplicates, as dedup
   inputs are), encoded with curator's fast path (the static model2vec encoder distilled from
   all-MiniLM-L6-v2, 256-d, unit rows), cached as bench/out/dedup_vectors_N_vV.npy.
2. Child processes on those vectors, each reaped with os.wait4 (its own peak RSS), each
   timing its search after loading the vectors and warming up (pynndescent's numba
   compilation is not search time), each saving its edges:
   - `curator`: curator.duplicates.near_pairs (cosine >= --threshold, at most --k partners
     per vector) and the connected components, as `curator duplicates` runs them;
   - `pynndescent`: the raw baseline, NNDescent's k-NN graph (k + 1 neighbours, dot product
     on the unit vectors, both cores) with the edges below the threshold dropped, then the
     same components;
   - `exact` (--exact): all against all, block by block (curator's exact search on the whole
     set): the reference for recall. O(n^2) time: 100k is minutes, 1M is hours.
3. Prints per child: search seconds, wall and CPU seconds, peak RSS, edges, pairs in groups,
   groups, and the recall of grouped pairs against the reference (exact when run, else the
   union of both methods' edges: every edge is a verified cosine >= threshold). Then the
   ratios pynndescent / curator of search seconds and of search CPU seconds (> 1: curator is
   faster / cheaper; on a shared, loaded machine the CPU ratio is the steadier one).
4. --job: a fresh database with the N rows ingested, embedded and mapped with --fast, then
   `curator duplicates` timed end to end as a child (SQL, search, judging, saving).
"""

from __future__ import annotations

import argparse
import json
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import orjson

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` and `curator` importable

from bench import ingest as ingest_bench  # noqa: E402  (after the path fix above)

VECTORS_VERSION = 1
METHODS = ("curator", "pynndescent", "exact")


# --- vectors --------------------------------------------------------------------------------


def build_vectors(rows: int, data_dir: Path) -> Path:
    """The cached fast-path vectors of the first `rows` prompts of the ingest bench's file."""
    path = ingest_bench.OUT_DIR / f"dedup_vectors_{rows}_v{VECTORS_VERSION}.npy"
    if path.exists():
        return path
    from curator import embedding

    source = _input_with(rows, data_dir)
    with open(source, "rb") as f:
        prompts = [orjson.loads(line)["prompt"] for line, _ in zip(f, range(rows))]
    started = time.perf_counter()
    vectors = embedding.load_encoder(fast=True).encode(prompts)
    print(f"vectors {rows:,} prompts encoded (fast path) in {time.perf_counter() - started:.0f} s", flush=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.rename(path)
    return path


def _input_with(rows: int, data_dir: Path) -> Path:
    """An ingest-bench input with at least `rows` rows: its first rows are the same whatever
    the file's length (one deterministic generator), so a cached larger file serves."""
    pattern = f"ingest_*_v{ingest_bench.BUILD_VERSION}.jsonl"
    larger = sorted(
        (int(p.name.split("_")[1]), p) for p in ingest_bench.OUT_DIR.glob(pattern) if int(p.name.split("_")[1]) >= rows
    )
    return larger[0][1] if larger else ingest_bench.build_input(rows, data_dir)


# --- children -------------------------------------------------------------------------------


def child(method: str, vectors_path: Path, out: Path, threshold: float, k: int) -> None:
    """One measured search; prints its figures as JSON and saves its edges to `out`."""
    from curator import duplicates as dedup

    vectors = np.load(vectors_path)
    if method == "pynndescent":
        from pynndescent import NNDescent

        NNDescent(vectors[:2000], metric="dot", n_neighbors=k + 1, random_state=0)  # compile
    started, cpu_started = time.perf_counter(), _cpu_seconds()
    if method == "pynndescent":
        index = NNDescent(vectors, metric="dot", n_neighbors=k + 1, random_state=0, n_jobs=-1, low_memory=True)
        neighbours, distances = index.neighbor_graph
        i = np.repeat(np.arange(len(vectors)), k + 1)
        j, similarity = neighbours.ravel(), 1 - distances.ravel()  # dot distance = 1 - dot
        kept = (j >= 0) & (i != j) & (similarity >= threshold)
        low, high = np.minimum(i[kept], j[kept]), np.maximum(i[kept], j[kept])
        _, first = np.unique(low.astype(np.int64) * len(vectors) + high, return_index=True)
        i, j = low[first], high[first]
    else:
        if method == "exact":
            dedup.EXACT_MAX = len(vectors)  # never partition: all against all
        i, j, _ = dedup.near_pairs(vectors, threshold, k)
    groups = dedup.components(len(vectors), i, j)
    seconds, cpu = time.perf_counter() - started, _cpu_seconds() - cpu_started
    np.savez(out, i=i, j=j)
    grouped = groups >= 0
    print(
        json.dumps(
            {
                "search_seconds": round(seconds, 2),
                "search_cpu_seconds": round(cpu, 2),
                "edges": int(len(i)),
                "pairs_in_groups": int(grouped.sum()),
                "groups": int(len(np.unique(groups[grouped]))),
            }
        )
    )


def _cpu_seconds() -> float:
    """User + system CPU time of this process, all threads (BLAS and numba use both cores)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def run_child(method: str, vectors: Path, work: Path, threshold: float, k: int) -> dict:
    out = work / f"{method}.npz"
    argv = [
        sys.executable,
        str(Path(__file__).resolve()),
        "--child",
        method,
        "--vectors",
        str(vectors),
        "--out",
        str(out),
        "--threshold",
        str(threshold),
        "--k",
        str(k),
    ]
    log = work / f"{method}.log"
    seconds, cpu, rss, code = ingest_bench.run_measured(argv, log)
    figures = {
        "method": method,
        "wall_seconds": round(seconds, 2),
        "cpu_seconds": round(cpu, 2),
        "peak_rss_mib": round(rss),
        "exit_code": code,
    }
    if code != 0:
        print(f"{method} exited with {code}:\n{log.read_text(errors='replace')[-3000:]}", file=sys.stderr)
        return figures
    figures.update(json.loads(log.read_text().strip().splitlines()[-1]))
    return figures


def grouped_recall(n: int, runs: list[dict], work: Path) -> None:
    """Add to each run the share of the reference's grouped pairs that it groups too."""
    from curator.duplicates import components

    edges = {r["method"]: np.load(work / f"{r['method']}.npz") for r in runs if r["exit_code"] == 0}
    if "exact" in edges:
        reference, name = edges["exact"], "exact"
    else:
        reference = {key: np.concatenate([e[key] for e in edges.values()]) for key in ("i", "j")}
        name = "union"
    in_reference = components(n, reference["i"], reference["j"]) >= 0
    for run in runs:
        if run["method"] in edges:
            mine = components(n, edges[run["method"]]["i"], edges[run["method"]]["j"]) >= 0
            run[f"grouped_recall_vs_{name}"] = round(float((mine & in_reference).sum() / max(in_reference.sum(), 1)), 4)


# --- the job end to end ---------------------------------------------------------------------


def run_job(rows: int, data_dir: Path, work: Path, threshold: float) -> list[dict]:
    """ingest, embed --fast, map --fast, then `curator duplicates`, each a measured child."""
    source = ingest_bench.build_input(rows, data_dir)
    db = work / "job.duckdb"
    stages = []
    for name, args in (
        ("ingest", ["ingest", str(source)]),
        ("map --fast", ["map", "--fast"]),
        ("duplicates", ["duplicates", "--threshold", str(threshold)]),
    ):
        argv = ingest_bench.curator_command(db, Path("-"))[:3] + args
        seconds, cpu, rss, code = ingest_bench.run_measured(argv, work / f"job_{args[0]}.log")
        stages.append(
            {
                "stage": name,
                "wall_seconds": round(seconds, 2),
                "cpu_seconds": round(cpu, 2),
                "peak_rss_mib": round(rss),
                "exit_code": code,
            }
        )
        print(
            f"job    {name:<11} {seconds:8.1f} s  cpu {cpu:8.1f} s  peak RSS {rss:7,.0f} MiB"
            + ("" if code == 0 else f"  FAILED (exit {code})"),
            flush=True,
        )
        if code != 0:
            print((work / f"job_{args[0]}.log").read_text(errors="replace")[-3000:], file=sys.stderr)
            break
    else:
        print("job    " + (work / "job_duplicates.log").read_text().strip().splitlines()[0])
    return stages


# --- main -------------------------------------------------------------------------------------


def print_runs(rows: int, runs: list[dict]) -> None:
    columns = [
        "method",
        "search s",
        "search cpu s",
        "wall s",
        "cpu s",
        "peak RSS MiB",
        "edges",
        "pairs in groups",
        "groups",
        "grouped recall",
    ]
    cells = []
    for r in runs:
        recall = next((f"{v:.4f} ({k.rsplit('_', 1)[1]})" for k, v in r.items() if k.startswith("grouped_recall")), "")
        cells.append(
            [
                r["method"],
                f"{r.get('search_seconds', float('nan')):.1f}",
                f"{r.get('search_cpu_seconds', float('nan')):.1f}",
                f"{r['wall_seconds']:.1f}",
                f"{r['cpu_seconds']:.1f}",
                f"{r['peak_rss_mib']:,}",
                f"{r.get('edges', 0):,}",
                f"{r.get('pairs_in_groups', 0):,}",
                f"{r.get('groups', 0):,}",
                recall,
            ]
        )
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(columns)]
    print(f"--- {rows:,} vectors")
    print("  ".join(c.rjust(w) for c, w in zip(columns, widths)))
    for row in cells:
        print("  ".join(v.rjust(w) for v, w in zip(row, widths)))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, action="append", help="vectors (repeatable; default 100000 and 1000000)")
    parser.add_argument("--threshold", type=float, default=0.95)
    parser.add_argument("--k", type=int, default=16, help="partners kept per vector (curator's --neighbours)")
    parser.add_argument("--exact", action="store_true", help="also run the exact all-pairs reference (O(n^2))")
    parser.add_argument("--no-baseline", action="store_true", help="skip pynndescent")
    parser.add_argument("--job", action="store_true", help="also time `curator duplicates` end to end on a --fast map")
    parser.add_argument("--data", type=Path, default=ingest_bench.DEFAULT_DATA)
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    parser.add_argument("--child", choices=METHODS, help=argparse.SUPPRESS)
    parser.add_argument("--vectors", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args.child, args.vectors, args.out, args.threshold, args.k)
        return 0

    results, ok = [], True
    for rows in args.rows or [100_000, 1_000_000]:
        vectors = build_vectors(rows, args.data)
        methods = ["curator"] + ([] if args.no_baseline else ["pynndescent"]) + (["exact"] if args.exact else [])
        with tempfile.TemporaryDirectory(prefix="curator-bench-dedup-") as tmp:
            work = Path(tmp)
            runs = [run_child(method, vectors, work, args.threshold, args.k) for method in methods]
            grouped_recall(rows, runs, work)
            print_runs(rows, runs)
            result = {"rows": rows, "threshold": args.threshold, "k": args.k, "runs": runs}
            by_method = {r["method"]: r for r in runs if r["exit_code"] == 0}
            if "curator" in by_method and "pynndescent" in by_method:
                ratio = by_method["pynndescent"]["search_seconds"] / by_method["curator"]["search_seconds"]
                result["speed_vs_pynndescent"] = round(ratio, 2)
                cpu_ratio = by_method["pynndescent"]["search_cpu_seconds"] / by_method["curator"]["search_cpu_seconds"]
                result["cpu_vs_pynndescent"] = round(cpu_ratio, 2)
                seconds = [by_method[m]["search_seconds"] for m in ("curator", "pynndescent")]
                print(
                    f"curator search vs raw pynndescent k-NN: {ratio:.2f}x as fast "
                    f"({seconds[0]:.1f} s vs {seconds[1]:.1f} s), {cpu_ratio:.2f}x less CPU"
                )
            if args.job:
                result["job"] = run_job(rows, args.data, work, args.threshold)
            ok &= all(r["exit_code"] == 0 for r in runs) and all(s["exit_code"] == 0 for s in result.get("job", []))
            results.append(result)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
