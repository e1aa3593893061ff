"""Polygon delete benchmark: a lasso delete over 1M pairs and its undo, against a bare DuckDB
UPDATE of the same pairs in the same run.

Run it from the project root:

    .venv/bin/python bench/polygon.py                      # 1,000,000 pairs, 3 runs of each
    .venv/bin/python bench/polygon.py --rows 20000 --repeat 1   # a smoke run
    .venv/bin/python bench/polygon.py --json

What it does:

1. Database: ingests bench/ingest.py's input file of --rows real-derived pairs (built if
   missing) into bench/out/polygon_ROWS.duckdb once; later runs reuse it (--fresh rebuilds).
   The map is FAKE: every pair gets a uniformly random point in [-10, 10]^2 (seeded), written
   with storage.maps (replace + add_points) without embedding or UMAP. A polygon delete only
   reads map_points, so the layout matters only through how many points fall inside.
   Each run works on a copy of that database, so the operations log does not pile up.
2. For each target share (30%, 1%): a concave lasso of 100 vertices (a five-lobed blob) scaled
   so that its area is that share of the square. Timed per run, in this process:
   - `curator`: jobs.operations.apply(db, "delete", {"polygon": ...}) end to end, as the CLI
     and the web app call it: open the database, read the map's coordinates, point in polygon
     (numpy), UPDATE pairs.deleted_op, log operation_pairs and the operation, commit, close;
   - `select only`: jobs.operations.select (read-only), the selection part of the above;
   - `undo`: jobs.operations.undo of that delete, end to end;
   - `raw`: open, register the same ids (computed beforehand, untimed) as an Arrow table,
     `UPDATE pairs SET deleted_op = ... FROM ids WHERE pairs.id = ids.id`, commit, close.
     No selection, no log: the floor for changing those rows in DuckDB.
   Runs of the kinds are interleaved; a first untimed selection warms the page cache.
3. Prints each run's wall and CPU seconds (this process, all threads), the medians, and the
   ratio raw / curator (1.0 would be as fast as the bare UPDATE). The goal (issue 4) is a
   polygon delete over 1M pairs in <= 1 s. Exit status 0 when every delete and undo changed
   exactly the polygon's pairs.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` and `curator` importable

import storage  # noqa: E402  (after the path fix above)
from bench import ingest as ingest_bench  # noqa: E402
from curator.selection import points_in_polygon  # noqa: E402
from jobs import operations  # noqa: E402
from storage import maps as map_rows  # noqa: E402
from storage import operations as op_rows  # noqa: E402

SEED = 7
SIDE = 10.0  # fake map points are uniform in [-SIDE, SIDE]^2
SHARES = (0.30, 0.01)


def build_database(rows: int, data_dir: Path, fresh: bool) -> Path:
    """The cached benchmark database: ingested with the real CLI, plus a fake default map."""
    db = ingest_bench.OUT_DIR / f"polygon_{rows}.duckdb"
    if db.exists() and not fresh:
        return db
    db.unlink(missing_ok=True)
    input_path = ingest_bench.build_input(rows, data_dir)
    print(f"ingesting {input_path} into {db} ...", flush=True)
    curator = Path(sys.executable).with_name("curator")
    subprocess.run([str(curator), "--db", str(db), "ingest", str(input_path)], check=True, stdout=subprocess.DEVNULL)
    con = storage.connect(db)
    try:
        ids = con.execute("SELECT id FROM pairs ORDER BY id").fetchnumpy()["id"]
        rng = np.random.default_rng(SEED)
        coords = rng.uniform(-SIDE, SIDE, size=(len(ids), 2)).astype(np.float32)
        con.begin()
        map_id = map_rows.replace(con, "fake", "prompt", 0, {"fake": "uniform random points"}, "", len(ids), True)
        map_rows.add_points(con, map_id, ids, coords, np.full(len(ids), -1, dtype=np.int32), placed=False)
        con.commit()
    finally:
        con.close()
    return db


def lasso(share: float, vertices: int = 100) -> list[list[float]]:
    """A concave five-lobed polygon centred on the map whose area is `share` of the square."""
    angles = np.linspace(0, 2 * np.pi, vertices, endpoint=False)
    radii = 1 + 0.3 * np.sin(5 * angles)
    xs, ys = radii * np.cos(angles), radii * np.sin(angles)
    area = 0.5 * abs(np.dot(xs, np.roll(ys, -1)) - np.dot(ys, np.roll(xs, -1)))
    scale = np.sqrt(share * (2 * SIDE) ** 2 / area)
    return [[float(x * scale), float(y * scale)] for x, y in zip(xs, ys)]


def timed(fn):
    wall, cpu = time.perf_counter(), time.process_time()
    result = fn()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def raw_update(db: Path, ids: np.ndarray, marker: int) -> None:
    con = storage.connect(db)
    try:
        with op_rows.chosen_ids(con, ids):
            con.begin()
            con.execute("UPDATE pairs SET deleted_op = ? FROM chosen_ids c WHERE pairs.id = c.id", [marker])
            con.commit()
    finally:
        con.close()


def reset_raw(db: Path, marker: int) -> None:
    con = storage.connect(db)
    try:
        con.execute("UPDATE pairs SET deleted_op = NULL WHERE deleted_op = ?", [marker])
    finally:
        con.close()


def run_share(db: Path, share: float, repeat: int) -> dict:
    polygon = lasso(share)
    con = storage.connect_read_only(db)
    try:
        points = op_rows.map_coordinates(con, map_rows.default(con).id)
    finally:
        con.close()
    expected = np.sort(points["pair_id"][points_in_polygon(points["x"], points["y"], polygon)])
    operations.select(db, {"polygon": polygon})  # warm the page cache
    runs: dict[str, list[tuple[float, float]]] = {"curator": [], "select only": [], "undo": [], "raw": []}
    ok = True
    for _ in range(repeat):
        op, wall, cpu = timed(lambda: operations.apply(db, "delete", {"polygon": polygon}, reason="bench"))
        runs["curator"].append((wall, cpu))
        ok &= op.count == len(expected)
        _, wall, cpu = timed(lambda: operations.select(db, {"polygon": polygon}))
        runs["select only"].append((wall, cpu))
        undone, wall, cpu = timed(lambda: operations.undo(db, op.id))  # noqa: B023 (called by timed)
        runs["undo"].append((wall, cpu))
        ok &= undone.count == len(expected)
        _, wall, cpu = timed(lambda: raw_update(db, expected, -1))
        runs["raw"].append((wall, cpu))
        reset_raw(db, -1)
    medians = {
        name: (statistics.median(w for w, _ in r), statistics.median(c for _, c in r)) for name, r in runs.items()
    }
    return {
        "share": share,
        "selected": len(expected),
        "runs": runs,
        "medians": medians,
        "ok": ok,
        "ratio_raw_over_curator": medians["raw"][0] / medians["curator"][0],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="runs of each kind, interleaved")
    parser.add_argument("--data", type=Path, default=ingest_bench.DEFAULT_DATA)
    parser.add_argument("--fresh", action="store_true", help="rebuild the cached database")
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    args = parser.parse_args()

    base = build_database(args.rows, args.data, args.fresh)
    results = []
    with tempfile.TemporaryDirectory(prefix="curator-bench-polygon-", dir=ingest_bench.OUT_DIR) as tmp:
        db = Path(tmp) / "bench.duckdb"
        shutil.copyfile(base, db)
        print(
            f"{args.rows:,} pairs, fake uniform map; polygon: concave lasso of 100 vertices; "
            f"{args.repeat} run(s) of each, interleaved"
        )
        for share in SHARES:
            result = run_share(db, share, args.repeat)
            results.append(result)
            print(f"\nlasso over {share:.0%} of the map: {result['selected']:,} pairs")
            for name, runs in result["runs"].items():
                figures = "  ".join(f"{w:5.2f}s (cpu {c:4.2f})" for w, c in runs)
                wall, cpu = result["medians"][name]
                print(f"  {name:<12} median {wall:5.2f} s  cpu {cpu:4.2f} s   runs: {figures}")
            print(
                f"  ratio raw / curator: {result['ratio_raw_over_curator']:.2f}x"
                + ("" if result["ok"] else "   MISMATCH: a delete or undo changed another number of pairs")
            )
    if args.json:
        print(json.dumps({"rows": args.rows, "repeat": args.repeat, "results": results}, indent=2))
    return 0 if all(r["ok"] for r in results) else 1


if __name__ == "__main__":
    sys.exit(main())
