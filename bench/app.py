"""Web app benchmark: a 1M-pair map in Chromium, from page load to a visible map, and from a
lasso over a large region to its deletion being committed; each against a raw baseline
measured in the same run.

Run it from the project root:

    .venv/bin/python bench/app.py                        # 1,000,000 pairs, 3 runs of each
    .venv/bin/python bench/app.py --rows 20000 --repeat 1   # a smoke run

What it does:

1. Database: bench/polygon.py's cached database (--rows real-derived pairs ingested with the
   CLI, and a FAKE uniform map written with storage.maps: no embedding or UMAP, which other
   benchmarks time). The app draws a sample and a density layer above ui.mapview.MAX_DRAWN
   points, so the layout matters only through how many points a lasso covers. Each run of
   the whole benchmark works on a copy.
2. A real `curator app` server on 127.0.0.1 and Debian's headless Chromium through Playwright.
   - load: a fresh tab goes to the Map page; timed until the scattergl canvas is drawn and the
     exact "1,000,000 points" caption is shown. The first run is a cold start (the server
     reads the map from DuckDB); later runs hit its cache, as a user's next visit does.
   - lasso → committed: a lasso over the middle ~40% of the plot, as a mouse draws it;
     timed from mouse-up to the exact count of the selection ("N pairs selected": the
     polygon applied to ALL points on the server), then from the Delete click to
     "delete: N pairs changed" (the operation committed), checked in the database; undone
     (untimed) before the next run.
3. Raw baselines in the same run:
   - load: a static HTML file with plotly.js (the copy inside the plotly package, offline)
     drawing the same number of points as one scattergl trace, opened in the same browser;
     timed the same way (until its canvas is drawn). The floor for showing that many points.
   - delete: a bare DuckDB UPDATE of the same pairs (bench/polygon.py's raw_update).
   Ratios raw / curator (1.0 would be as fast as the baseline). Goals (issue 5): load <= 5 s,
   lasso -> committed <= 2 s at 1M pairs.
4. A screenshot of the map after the lasso goes to bench/out/app_ROWS.png.
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` and `curator` importable

import storage  # noqa: E402  (after the path fix above)
from bench import ingest as ingest_bench  # noqa: E402
from bench import polygon as polygon_bench  # noqa: E402
from ui import mapview  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CANVAS = ".js-plotly-plot canvas"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(db: Path, log: Path, timeout: float = 120) -> tuple[subprocess.Popen, str]:
    """A real `curator app` on a free loopback port, answering its health check; (process, URL).
    Shared with tests/test_browser.py. The log goes to a file: an undrained pipe fills and then
    blocks the server mid-request."""
    port = free_port()
    curator = Path(sys.executable).with_name("curator")
    with open(log, "wb") as out:
        server = subprocess.Popen([str(curator), "--db", str(db), "app", "--port", str(port), "--no-browser"],
                                  cwd=ROOT, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return server, url
        except OSError:
            time.sleep(0.3)
    server.kill()
    raise RuntimeError(f"curator app did not answer in {timeout:.0f} s: {log.read_text(errors='replace')}")


def stop_app(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=20)
    except subprocess.TimeoutExpired:  # a session thread still busy: stop it hard
        server.kill()
        server.wait()


def raw_page(folder: Path, db: Path) -> Path:
    """A static page drawing the same number of points as the app, with nothing else."""
    import plotly

    con = storage.connect_read_only(db)
    try:
        xy = con.execute("SELECT x, y FROM map_points").fetchnumpy()
    finally:
        con.close()
    n = min(len(xy["x"]), mapview.MAX_DRAWN)
    data = {"x": np.round(xy["x"][:n], 4).tolist(), "y": np.round(xy["y"][:n], 4).tolist()}
    js = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
    page = folder / "raw.html"
    page.write_text(f"""<html><head><script src="{js.as_uri()}"></script></head><body>
<div id="plot" style="width:1200px;height:640px"></div><script>
const d = {json.dumps(data)};
Plotly.newPlot("plot", [{{type: "scattergl", mode: "markers", x: d.x, y: d.y, marker: {{size: 3}}}}],
               {{dragmode: "lasso"}});
</script></body></html>""")
    return page


def timed_load(browser, url: str, ready_text: str | None) -> float:
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_selector(CANVAS, timeout=120_000)
    if ready_text:
        page.get_by_text(ready_text).first.wait_for(timeout=120_000)
    seconds = time.perf_counter() - started
    page.close()
    return seconds


def settle(page) -> None:
    page.wait_for_timeout(100)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')",
                           timeout=120_000)


# A lasso over the middle ~40% of the plot, as fractions of its size from its centre.
LASSO = [(-.35, -.3), (.3, -.35), (.35, .2), (0, .35), (-.3, .25), (-.35, -.3)]


def draw_lasso(page, path: list[tuple[float, float]]) -> None:
    """Draw a lasso on the first map with the mouse, leaving the button down: the caller
    releases it (`page.mouse.up()`) and times what follows. `path` is in fractions of the
    plot's width and height from its centre."""
    box = page.locator(".js-plotly-plot .nsewdrag").first.bounding_box()
    cx, cy = box["x"] + box["width"] / 2, box["y"] + box["height"] / 2
    points = [(cx + dx * box["width"], cy + dy * box["height"]) for dx, dy in path]
    page.mouse.move(*points[0])
    page.mouse.down()
    for x, y in points[1:]:
        page.mouse.move(x, y, steps=6)


def lasso_and_delete(page, db: Path, out_png: Path | None) -> tuple[int, float, float]:
    """(pairs deleted, seconds mouse-up -> exact count, seconds Delete click -> committed)."""
    draw_lasso(page, LASSO)
    started = time.perf_counter()
    page.mouse.up()
    counted = page.get_by_text(re.compile(r"[\d,]+ pairs selected")).first
    counted.wait_for(timeout=120_000)
    select_seconds = time.perf_counter() - started
    count = int(re.search(r"([\d,]+) pairs selected", counted.inner_text()).group(1).replace(",", ""))
    settle(page)
    if out_png:
        page.screenshot(path=str(out_png), full_page=True)
    page.get_by_label("Delete reason").fill("bench")
    page.get_by_label("Delete reason").press("Tab")
    settle(page)
    started = time.perf_counter()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text(re.compile(rf"delete: {count:,} pairs changed")).first.wait_for(timeout=120_000)
    delete_seconds = time.perf_counter() - started
    deleted = scalar(db, "SELECT count(*) FROM pairs WHERE deleted_op IS NOT NULL")
    if deleted != count:
        raise SystemExit(f"the app said {count:,} pairs were deleted, the database has {deleted:,}")
    settle(page)
    page.get_by_role("button", name="Undo last operation").click()
    page.get_by_text(re.compile(r"undid operation \d+")).first.wait_for(timeout=120_000)
    settle(page)
    page.get_by_role("button", name="Clear selection").click()  # the next lasso's count is new text
    settle(page)
    page.get_by_text(re.compile(r"[\d,]+ pairs selected")).first.wait_for(state="detached")
    page.wait_for_selector(CANVAS)
    return count, select_seconds, delete_seconds


def scalar(db: Path, sql: str) -> int:
    con = storage.connect_read_only(db)
    try:
        return con.execute(sql).fetchone()[0]
    finally:
        con.close()


def deleted_ids(db: Path, count: int) -> np.ndarray:
    """The ids the last app delete changed (for the raw UPDATE of the same pairs)."""
    con = storage.connect_read_only(db)
    try:
        (op_id,) = con.execute("SELECT max(id) FROM operations WHERE kind = 'delete'").fetchone()
        ids = con.execute("SELECT pair_id FROM operation_pairs WHERE op_id = ?", [op_id]).fetchnumpy()["pair_id"]
    finally:
        con.close()
    assert len(ids) == count, (len(ids), count)
    return ids


def raw_update_seconds(db: Path, ids: np.ndarray) -> float:
    """Seconds of a bare UPDATE of these pairs, once the app's last read has let the file go
    (DuckDB: a reader in another process keeps writers out)."""
    for _ in range(600):
        started = time.perf_counter()
        try:
            polygon_bench.raw_update(db, ids, -1)
        except storage.DatabaseLocked:
            time.sleep(0.1)
            continue
        seconds = time.perf_counter() - started
        polygon_bench.reset_raw(db, -1)
        return seconds
    raise RuntimeError("the app kept the database open for a minute")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--data", type=Path, default=ingest_bench.DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    base = polygon_bench.build_database(args.rows, args.data, fresh=False)
    figures: dict[str, list[float]] = {"load cold": [], "load warm": [], "raw load": [], "lasso -> count": [],
                                       "delete -> committed": [], "raw update": []}
    with tempfile.TemporaryDirectory(prefix="curator-bench-app-", dir=ingest_bench.OUT_DIR) as tmp:
        db = Path(tmp) / "bench.duckdb"
        shutil.copyfile(base, db)
        raw = raw_page(Path(tmp), db)
        server, url = start_app(db, Path(tmp) / "app.log")
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, headless=True,
                                            args=["--no-sandbox", "--disable-background-networking"])
                ready = f"{args.rows:,} points"
                for run in range(args.repeat):
                    figures["load cold" if run == 0 else "load warm"].append(timed_load(browser, url, ready))
                    figures["raw load"].append(timed_load(browser, raw.as_uri(), None))
                    print(f"load run {run + 1}: app {figures['load cold' if run == 0 else 'load warm'][-1]:.2f} s, "
                          f"raw {figures['raw load'][-1]:.2f} s", flush=True)
                page = browser.new_page(viewport={"width": 1500, "height": 1100})
                page.set_default_timeout(120_000)
                page.goto(url)
                page.wait_for_selector(CANVAS, timeout=120_000)
                page.get_by_text(ready).first.wait_for(timeout=120_000)
                settle(page)
                for run in range(args.repeat):
                    shot = ingest_bench.OUT_DIR / f"app_{args.rows}.png" if run == 0 else None
                    try:
                        count, select_s, delete_s = lasso_and_delete(page, db, shot)
                    except Exception:
                        page.screenshot(path=str(ingest_bench.OUT_DIR / f"app_{args.rows}_failed.png"), full_page=True)
                        raise
                    figures["lasso -> count"].append(select_s)
                    figures["delete -> committed"].append(delete_s)
                    figures["raw update"].append(raw_update_seconds(db, deleted_ids(db, count)))
                    print(f"lasso run {run + 1}: {count:,} pairs, count {select_s:.2f} s, committed {delete_s:.2f} s, "
                          f"raw update {figures['raw update'][-1]:.2f} s", flush=True)
                browser.close()
        except Exception:
            print("app log (tail):\n" + (Path(tmp) / "app.log").read_text(errors="replace")[-4000:])
            raise
        finally:
            stop_app(server)
    median = {name: statistics.median(values) for name, values in figures.items() if values}
    committed = median["lasso -> count"] + median["delete -> committed"]
    load = median.get("load warm", median["load cold"])
    print(f"{args.rows:,} pairs (fake uniform map), Chromium headless, {args.repeat} run(s); lasso: {count:,} pairs")
    for name, values in figures.items():
        if values:
            print(f"  {name:<20} median {median[name]:6.2f} s   runs: " + "  ".join(f"{v:.2f}" for v in values))
    print(f"  page load -> visible map: cold {median['load cold']:.2f} s, warm {load:.2f} s (goal <= 5 s); "
          f"ratio raw / curator (warm) {median['raw load'] / load:.2f}x")
    print(f"  lasso -> deletion committed: {committed:.2f} s (goal <= 2 s); "
          f"ratio raw update / curator delete {median['raw update'] / median['delete -> committed']:.2f}x")
    print(f"  screenshot: {ingest_bench.OUT_DIR / f'app_{args.rows}.png'}")
    if args.json:
        print(json.dumps({"rows": args.rows, "selected": count, "runs": figures, "medians": median}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
