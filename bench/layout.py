"""Layout benchmark: how readably the map's projection settings fill the view.

    .venv/bin/python bench/layout.py                      # demo set + real mixture, the full grid
    .venv/bin/python bench/layout.py --datasets demo      # the demo set only
    .venv/bin/python bench/layout.py --json               # also print every figure as JSON

For each dataset it loads the stored prompt vectors (all-MiniLM-L6-v2, the bundled default)
through `storage.embeddings.load_vectors`, fits `curator.projection.fit_projection` (what
`curator map` runs) with each setting of the grid, n_neighbors x min_dist, and measures:

- **fill**: the share of the cells of a 40 x 40 grid over the view that hold at least one
  point. Two views: the *robust* view, the 0.5th..99.5th percentile box of x and of y, made
  square as an equal-aspect plot shows it (the longer side, centred), and the *min/max* view,
  the square around every point (what a plot that fits its view to the data shows). A map of
  tight specks fills few cells; an evenly spread one fills many.
- **core**: the share of the min/max view's area covered by the 1%..99% box: how much a few
  outlying points shrink the main mass when the view is fitted to min/max (1.0: no outliers).
- **labels**: the share of the 25 largest fine clusters' labels (what the map page writes at
  cluster medians, ui/mapview.py) whose box, 0.18 x 0.035 of the robust view's side (about a
  20-character label on an 800 px plot), overlaps another label's box: the pile of labels.
- **knn10**: neighbourhood preservation, the mean share of each point's 10 nearest neighbours
  in 2-D that are among its 10 nearest in the embedding (cosine). Tie-aware: a 2-D neighbour
  counts when its cosine is at least the point's 10th-best cosine, so that exact duplicate
  prompts (many in both sets) do not make the figure a lottery among equal vectors.
- **fit s**: the wall time of fit_projection (warm: a small fit first compiles numba), and the
  fine clusters and noise of `projection.cluster` on the coordinates, as `curator map` has them.

The ratio columns divide by the current default's figures (n_neighbors 15, min_dist 0.1)
measured in the same run.

Datasets:
- `demo`: `curator demo`'s database (2,459 pairs); built with `curator --db DB demo` when
  missing (--demo-db, default /tmp/layout/demo.duckdb).
- `real`: a real mixture from ../shared/data, ingested and embedded by `curator ingest` and
  `curator embed` into bench/out/layout/real.duckdb (kept: later runs reuse its vectors):
  Alpaca (4,998 instructions), Anthropic HH harmless-base test (2,308 dialogues) and FastChat's
  identity conversations (500, one homogeneous blob of repeats): 7,806 pairs.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `curator` and `storage` importable

from bench import ingest as ingest_bench  # noqa: E402  (after the path fix above)
from curator import map_measures, projection  # noqa: E402
from storage import db as storage_db  # noqa: E402
from storage import embeddings as vector_rows  # noqa: E402

OUT_DIR = ROOT / "bench" / "out" / "layout"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
REAL_FILES = ["alpaca_5000.json", "hh-rlhf_harmless-base/test.jsonl.gz", "dummy_conversation.json"]
NEIGHBOURS = (15, 30, 50)
MIN_DISTS = (0.1, 0.25, 0.5, 0.8)
BASELINE = (15, 0.1)
GRID_CELLS = 40
LABELS = 25
LABEL_BOX = (0.18, 0.035)  # label width and height as shares of the view's side


@dataclass
class Result:
    dataset: str
    n: int
    n_neighbors: int
    min_dist: float
    fill_robust: float
    fill_minmax: float
    core: float
    labels: float
    knn10: float
    clusters: int
    noise: int
    fit_s: float


# --- measures ---------------------------------------------------------------------------------


def square_box(low: np.ndarray, high: np.ndarray) -> tuple[np.ndarray, float]:
    """(lower-left corner, side) of the square an equal-aspect plot shows around a box."""
    side = float(max(high - low))
    return (low + high) / 2 - side / 2, side


def robust_view(coords: np.ndarray, q: float = 0.5) -> tuple[np.ndarray, float]:
    return square_box(np.percentile(coords, q, axis=0), np.percentile(coords, 100 - q, axis=0))


def minmax_view(coords: np.ndarray) -> tuple[np.ndarray, float]:
    return square_box(coords.min(axis=0), coords.max(axis=0))


def fill(coords: np.ndarray, view: tuple[np.ndarray, float], cells: int = GRID_CELLS) -> float:
    """Share of the view's cells x cells grid that hold at least one point."""
    corner, side = view
    cell = np.floor((coords - corner) / side * cells).astype(np.int64)
    inside = ((cell >= 0) & (cell < cells)).all(axis=1)
    occupied = np.unique(cell[inside, 0] * cells + cell[inside, 1])
    return len(occupied) / cells**2


def core_share(coords: np.ndarray) -> float:
    """Area of the 1%..99% box over the area of the (square) min/max view."""
    extent = np.percentile(coords, 99, axis=0) - np.percentile(coords, 1, axis=0)
    return float(extent.prod() / minmax_view(coords)[1] ** 2)


def label_overlap(coords: np.ndarray, labels: np.ndarray) -> float:
    """Share of the LABELS largest clusters' labels (boxes at the cluster medians) that overlap
    another label's box, boxes sized against the robust view's side."""
    ids, sizes = np.unique(labels[labels != projection.NOISE], return_counts=True)
    top = ids[np.argsort(-sizes, kind="stable")[:LABELS]]
    if len(top) < 2:
        return 0.0
    centres = np.array([np.median(coords[labels == c], axis=0) for c in top])
    side = robust_view(coords)[1]
    dx = np.abs(centres[:, None, 0] - centres[None, :, 0]) < LABEL_BOX[0] * side
    dy = np.abs(centres[:, None, 1] - centres[None, :, 1]) < LABEL_BOX[1] * side
    hit = dx & dy
    np.fill_diagonal(hit, False)
    return float(hit.any(axis=1).mean())


# --- data -------------------------------------------------------------------------------------


def curator(db: Path, *args: str) -> None:
    exe = Path(sys.executable).with_name("curator")
    subprocess.run([str(exe), "--db", str(db), *args], check=True)


def prompt_vectors(db: Path) -> np.ndarray:
    con = storage_db.connect_read_only(db)
    try:
        row = con.execute(
            "SELECT id FROM embedding_sets WHERE model = 'all-MiniLM-L6-v2' AND field = 'prompt'"
        ).fetchone()
        if row is None:
            raise SystemExit(f"{db}: no all-MiniLM-L6-v2 prompt vectors")
        return vector_rows.load_vectors(con, row[0])[1]
    finally:
        con.close()


def demo_vectors(db: Path) -> np.ndarray:
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        curator(db, "demo")
    return prompt_vectors(db)


def real_vectors(data_dir: Path) -> np.ndarray:
    db = OUT_DIR / "real.duckdb"
    if not db.exists():
        OUT_DIR.mkdir(parents=True, exist_ok=True)
        paths = [data_dir / name for name in REAL_FILES]
        missing = [str(p) for p in paths if not p.exists()]
        if missing:
            raise SystemExit(f"missing {', '.join(missing)} (point --data at the shared data folder)")
        curator(db, "ingest", *map(str, paths))
        curator(db, "embed")
    return prompt_vectors(db)


# --- the run ----------------------------------------------------------------------------------


def measure(dataset: str, vectors: np.ndarray, grid: list[tuple[int, float]]) -> list[Result]:
    results = []
    for n_neighbors, min_dist in grid:
        params = projection.MapParams(n_neighbors=n_neighbors, min_dist=min_dist)
        start = time.perf_counter()
        _, coords = projection.fit_projection(vectors, params)
        seconds = time.perf_counter() - start
        labels = projection.cluster(coords, params)
        result = Result(
            dataset,
            len(vectors),
            n_neighbors,
            min_dist,
            fill(coords, robust_view(coords)),
            fill(coords, minmax_view(coords)),
            core_share(coords),
            label_overlap(coords, labels),
            map_measures.knn_preservation(vectors, coords, sample=None),
            int(len(set(labels.tolist()) - {-1})),
            int((labels == projection.NOISE).sum()),
            seconds,
        )
        results.append(result)
        np.save(OUT_DIR / f"coords_{dataset}_{n_neighbors}_{min_dist}.npy", coords)
        print(
            f"  {dataset} n_neighbors={n_neighbors} min_dist={min_dist}: fill {result.fill_robust:.3f}, "
            f"knn10 {result.knn10:.3f}, {seconds:.1f} s",
            file=sys.stderr,
            flush=True,
        )
    return results


def print_table(results: list[Result]) -> None:
    base = next((r for r in results if (r.n_neighbors, r.min_dist) == BASELINE), None)
    columns = [
        "nn",
        "min_dist",
        "fill",
        "x",
        "fill min/max",
        "core",
        "labels",
        "knn10",
        "x",
        "clusters",
        "noise",
        "fit s",
        "x",
    ]
    cells = []
    for r in results:

        def ratio(value: float, of: float) -> str:
            return f"{value / of:.2f}" if base is not None and of else "-"

        cells.append(
            [
                str(r.n_neighbors),
                f"{r.min_dist:g}",
                f"{r.fill_robust:.3f}",
                ratio(r.fill_robust, base.fill_robust if base else 0),
                f"{r.fill_minmax:.3f}",
                f"{r.core:.2f}",
                f"{r.labels:.2f}",
                f"{r.knn10:.3f}",
                ratio(r.knn10, base.knn10 if base else 0),
                str(r.clusters),
                f"{r.noise:,}",
                f"{r.fit_s:.1f}",
                ratio(r.fit_s, base.fit_s if base else 0),
            ]
        )
    ingest_bench.print_cells(columns, cells)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="demo,real", help="comma-separated: demo, real")
    parser.add_argument("--demo-db", type=Path, default=Path("/tmp/layout/demo.duckdb"))
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared real-data folder")
    parser.add_argument("--neighbors", default=",".join(map(str, NEIGHBOURS)))
    parser.add_argument("--min-dists", default=",".join(map(str, MIN_DISTS)))
    parser.add_argument("--json", action="store_true", help="also print the figures as JSON")
    return parser.parse_args()


def main() -> int:
    args = parse_args()
    grid = [(int(n), float(d)) for n in args.neighbors.split(",") for d in args.min_dists.split(",")]
    if BASELINE in grid:  # the default first, so that a cut-short run still has its ratios' base
        grid.remove(BASELINE)
        grid.insert(0, BASELINE)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    loaders = {"demo": lambda: demo_vectors(args.demo_db), "real": lambda: real_vectors(args.data)}
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    unknown = [d for d in datasets if d not in loaders]
    if unknown:
        raise SystemExit(f"unknown dataset(s) {', '.join(unknown)}; choose from demo, real")
    # Warm-up: the first fit of a process compiles numba code (~20 s); keep it out of the times.
    projection.fit_projection(np.random.default_rng(0).standard_normal((300, 16)), projection.MapParams())
    everything = []
    for name in datasets:
        vectors = loaders[name]()
        results = measure(name, vectors, grid)
        print(
            f"\n{name}: {len(vectors):,} prompt vectors ({vectors.shape[1]}-d); "
            f"x = ratio to the default n_neighbors={BASELINE[0]}, min_dist={BASELINE[1]}"
        )
        print_table(results)
        everything += results
    (OUT_DIR / "results.json").write_text(json.dumps([asdict(r) for r in everything], indent=1))
    if args.json:
        print(json.dumps([asdict(r) for r in everything]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
