"""Map quality benchmark: is the map of a real mixture readable? (issue 24's measures)

    .venv/bin/python bench/map_quality.py                       # the full mixture (~86k), --fast map
    .venv/bin/python bench/map_quality.py --exact               # also the exact model's map
    .venv/bin/python bench/map_quality.py --per-family 2000     # a smaller mixture
    .venv/bin/python bench/map_quality.py --db PATH --no-map    # measure the stored map of PATH

Builds a real mixture of ../shared/data with a family per pair (bench/mixtures.py: general
instructions, code, P3 templates, HH dialogues, roleplay, canned identity answers), runs
`curator map --rebuild` on it as a user would (wall time and peak memory of the process), and
measures the stored map with curator.map_measures: noise share, halo share, family purity,
label coverage (fine and coarse), 10-NN preservation against the vectors, and the largest
coarse clusters with their labels and families.

The mixture database is kept in bench/out/map_quality/ (its vectors are reused by later runs).
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `curator`, `storage` and `bench` importable

from bench import mixtures  # noqa: E402  (after the path fix above)
from curator import embedding, map_measures  # noqa: E402
from storage import db as storage_db  # noqa: E402
from storage import embeddings as vector_rows  # noqa: E402
from storage import maps as map_rows  # noqa: E402

OUT_DIR = ROOT / "bench" / "out" / "map_quality"
DEFAULT_DATA = ROOT.parent / "shared" / "data"


def curator(db: Path, *args: str) -> tuple[float, float]:
    """Run `curator --db DB ARGS`; (wall seconds, peak memory of the process in GiB)."""
    exe = Path(sys.executable).with_name("curator")
    started = time.perf_counter()
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    subprocess.run([str(exe), "--db", str(db), *args], check=True)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: a fresh process per measure would be
    # exact; here each map runs after the ingest (smaller), so the figure is the map's.
    return time.perf_counter() - started, max(peak, before) / 2**20


def measure(db: Path, map_name: str) -> dict:
    con = storage_db.connect_read_only(db)
    try:
        row = map_rows.find(con, map_name)
        if row is None:
            raise SystemExit(f"{db}: no map named {map_name!r}")
        points = map_rows.points(con, row.id)
        ids = points["pair_id"]
        _, prompts, responses = vector_rows.pair_texts(con, ids)
        texts = embedding.field_texts(prompts, responses, row.field)
        sources = dict(con.execute("SELECT id, source FROM pairs").fetchall())
        clusters = con.execute(
            "SELECT level, id, label, parent, size FROM clusters WHERE map_id = ? ORDER BY level, id", [row.id]
        ).fetchall()
        _, vectors = vector_rows.load_vectors(con, row.set_id, ids)
    finally:
        con.close()
    coords = np.column_stack([points["x"], points["y"]])
    fine = points["cluster"]
    families = np.array([mixtures.family_of(sources[int(i)]) for i in ids])
    fine_labels = {c[1]: c[2] for c in clusters if c[0] == "fine"}
    parent = {c[1]: c[3] for c in clusters if c[0] == "fine"}
    coarse_labels = {c[1]: c[2] for c in clusters if c[0] == "coarse"}
    coarse = np.array([parent.get(int(c), -1) if c >= 0 else -1 for c in fine])
    coarse_rows = []
    for cid, label in coarse_labels.items():
        members = coarse == cid
        kinds, counts = np.unique(families[members], return_counts=True)
        top = np.argsort(-counts)[:2]
        coarse_rows.append(
            {
                "id": cid,
                "label": label,
                "size": int(members.sum()),
                "fine": int(sum(1 for f, p in parent.items() if p == cid)),
                "families": ", ".join(f"{kinds[i]} {counts[i] / members.sum():.0%}" for i in top),
            }
        )
    coarse_rows.sort(key=lambda r: -r["size"])
    return {
        "pairs": len(ids),
        "fine clusters": len(fine_labels) - (-1 in fine_labels),
        "coarse clusters": len(coarse_labels),
        "noise": map_measures.noise_share(fine),
        "halo": map_measures.halo_share(coords),
        "purity": map_measures.family_purity(coords, families),
        "label coverage (fine)": map_measures.label_coverage(texts, fine, fine_labels),
        "label coverage (coarse)": map_measures.label_coverage(texts, coarse, coarse_labels),
        "knn10": map_measures.knn_preservation(vectors, coords),
        "coarse": coarse_rows,
        "fine labels (largest 15)": [
            (fine_labels[c], int((fine == c).sum())) for c in sorted(fine_labels) if c >= 0 and c < 15
        ],
    }


def report(name: str, figures: dict) -> None:
    print(f"\n## {name}")
    for key in ("pairs", "fine clusters", "coarse clusters", "map s", "peak GiB"):
        if key in figures:
            value = figures[key]
            print(f"{key}: {value:,.1f}" if isinstance(value, float) else f"{key}: {value:,}")
    for key in ("noise", "halo", "purity", "label coverage (fine)", "label coverage (coarse)", "knn10"):
        print(f"{key}: {figures[key]:.3f}")
    print("coarse clusters (largest first): size, fine parts, families, label")
    for row in figures["coarse"][:20]:
        print(f"  {row['size']:>7,}  {row['fine']:>4}  {row['families']:<34} {row['label']}")
    print("largest fine clusters:")
    for label, size in figures["fine labels (largest 15)"]:
        print(f"  {size:>7,}  {label}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared real-data folder")
    parser.add_argument("--per-family", type=int, default=None, help="records per family (default: all)")
    parser.add_argument("--db", type=Path, help="measure this database (default: build the mixture)")
    parser.add_argument("--exact", action="store_true", help="also map with the exact model (slow)")
    parser.add_argument("--no-fast", action="store_true", help="skip the --fast map")
    parser.add_argument("--no-map", action="store_true", help="measure the stored maps, do not map again")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    db = args.db or OUT_DIR / f"mixture-{args.per_family or 'all'}.duckdb"
    if not db.exists():
        db.parent.mkdir(parents=True, exist_ok=True)
        print(f"building the mixture in {db}", file=sys.stderr)
        mixtures.build(db, args.data, args.per_family)
    runs = ([] if args.no_fast else [("fast", ["--fast"])]) + ([("exact", [])] if args.exact else [])
    results = {}
    for name, flags in runs:
        figures = {}
        if not args.no_map:
            seconds, peak = curator(db, "map", "--name", name, "--rebuild", *flags)
            figures.update({"map s": seconds, "peak GiB": peak})
        figures.update(measure(db, name))
        results[name] = figures
        report(f"{db.name}: map {name}", figures)
    if args.json:
        args.json.write_text(json.dumps(results, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
