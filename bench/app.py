"""Web app benchmark: the map page with every point drawn (ui/map_component), in Chromium,
against the same renderer alone on a static page with the same points, in the same run.

Run it from the project root:

    .venv/bin/python bench/app.py                            # 1,000,000 pairs, 3 runs of each
    .venv/bin/python bench/app.py --rows 100000 --repeat 2
    .venv/bin/python bench/app.py --rows 5000000 --positions-only   # the renderers alone

What it does:

1. Database: bench/polygon.py's cached database (--rows real-derived pairs ingested with the
   CLI, and a FAKE uniform map written with storage.maps: no embedding or UMAP, which other
   benchmarks time). Each run works on a copy.
2. A real `curator app` on 127.0.0.1 and Debian's headless Chromium through Playwright
   (software WebGL: SwiftShader, on the machine's cores).
   - first paint, cold: a fresh server and a fresh browser context (empty HTTP cache and
     IndexedDB), from navigation until the component has drawn all points
     (window.curatorMap.pointsDrawn); warm: a new tab in the same context once the first has
     stored the map's spatial index (the server's caches, the browser's HTTP cache and the
     index hot: a user's next visit).
   - lasso -> count: a lasso over ~50% of the map, drawn with the mouse in Lasso mode, from
     mouse-up until the page shows the exact "N pairs selected" (the polygon applied to every
     pair on the server) and the map highlights the same N.
   - delete -> committed and redrawn: from the Delete click until "delete: N pairs changed"
     is shown, the database holds the N deleted pairs, and the map has greyed them; undone
     (untimed) before the next run.
   - colour-by change: from picking another "Colour by" until the map has redrawn with it.
   - pan/zoom: frames the map drew per second (its 'draw' events) during a scripted zoom of
     --zoom-steps mouse-wheel steps; JS heap of the page (performance.memory).
3. Raw baselines in the same run:
   - the renderer alone: regl-scatterplot (bundled on first use from the component's own
     lockfile into bench/out/static/) on a static page served from 127.0.0.1, fetching the same float32 positions and
     colour codes, drawing them with the same options: first paint, a colour redraw, zoom
     frames per second, JS heap;
   - selection: curator.selection.points_in_polygon over the same points in this process;
   - delete: a bare DuckDB UPDATE of the same pairs (bench/polygon.py's raw_update).
   Ratios are raw / curator (1.0: as fast as the baseline). Goals (issue 14), at 1M pairs:
   first paint warm <= 2 s, cold <= 4 s; lasso -> count <= 0.5 s; lasso -> delete committed and
   redrawn <= 1 s; colour change <= 0.5 s.
4. A screenshot of the map after the lasso goes to bench/out/app_ROWS.png.

--positions-only: no database and no app; regl-scatterplot and deck.gl (ScatterplotLayer on
binary attributes, bundled beside it, the other renderer the issue named) each alone on
--rows random points, alternating: first paint, a colour redraw, zoom frames per second, heap.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import json
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` and `curator` importable

import storage  # noqa: E402  (after the path fix above)
from bench import ingest as ingest_bench  # noqa: E402
from bench import polygon as polygon_bench  # noqa: E402
from bench.app_driver import (  # noqa: E402
    SELECTED,
    draw_lasso,
    map_frame,
    selected_count,
    settle,
    start_app,
    stop_app,
)
from curator.selection import points_in_polygon  # noqa: E402

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
# The renderers alone, bundled on first use from the map component's own lockfile (npm, which
# only the benchmark needs: the app ships its built bundle) into the git-ignored bench/out/.
FRONTEND = ROOT / "ui" / "map_component" / "frontend"
RENDERER = ROOT / "bench" / "out" / "static" / "regl-scatterplot.js"
DECKGL = ROOT / "bench" / "out" / "static" / "deckgl.js"  # the renderer regl-scatterplot was measured against


def build_renderers() -> None:
    """Bundle RENDERER and DECKGL (`npm ci`, then `npm run build:bench`) unless they exist."""
    if RENDERER.exists() and DECKGL.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit("the renderer baselines are bundled with npm on first use: install node and npm")
    if not (FRONTEND / "node_modules").is_dir():
        subprocess.run([npm, "ci", "--no-audit", "--no-fund"], cwd=FRONTEND, check=True)
    subprocess.run([npm, "run", "build:bench"], cwd=FRONTEND, check=True)


# A lasso over about half of the map, as fractions of the map's half side from its centre.
LASSO = [(-0.8, -0.75), (0.75, -0.8), (0.8, 0.45), (0, 0.8), (-0.75, 0.6), (-0.8, -0.75)]


# --- the map in the browser (starting the app, lassos, settling: bench/app_driver.py) -------------


def zoom_fps(page, frame, steps: int, report_js: str = "window.curatorMap.draws") -> float:
    """Frames drawn per second while the mouse wheel zooms in `steps` steps over the plot, then out."""
    # a long timeout: at millions of points one software-WebGL frame keeps the page busy for seconds
    box = (frame or page).locator("#plot").bounding_box(timeout=300_000)
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    target = frame if frame is not None else page
    before = target.evaluate(report_js)
    started = time.perf_counter()
    for step in range(steps):
        page.mouse.wheel(0, -120 if step < steps // 2 else 120)
        page.wait_for_timeout(16)
    page.wait_for_timeout(100)
    seconds = time.perf_counter() - started
    return (target.evaluate(report_js) - before) / seconds


def js_heap_mb(target) -> float:
    return target.evaluate("performance.memory.usedJSHeapSize") / 2**20


# --- the raw baseline: the renderer alone on a static page -----------------------------------------

RAW_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head>
<body style="margin:0"><div id="plot" style="position:relative;width:1100px;height:640px"></div>
<script src="regl-scatterplot.js"></script><script>
window.raw = {draws: 0, drawn: null};
(async () => {
  const started = performance.now();
  const [pos, codes] = await Promise.all(["positions.bin", "codes.bin"].map(u => fetch(u).then(r => r.arrayBuffer())));
  const all = new Float32Array(pos), n = all.length / 2;
  const x = all.subarray(0, n), y = all.subarray(n);
  const canvas = document.createElement("canvas");
  document.getElementById("plot").appendChild(canvas);
  const plot = createScatterplot({canvas, backgroundColor: "#ffffff", pointSize: POINT_SIZE,
                                  opacityBy: n > 50000 ? "density" : null, pointColor: PALETTE, colorBy: "valueA"});
  plot.subscribe("draw", () => { window.raw.draws += 1; });
  const z = new Float32Array(n); z.set(new Uint8Array(codes));
  await plot.draw({x, y, z}, {zDataType: "categorical"});
  window.raw.drawn = performance.now() - started;
  window.raw.recolour = async () => {
    const t = performance.now();
    const other = new Float32Array(n);
    for (let i = 0; i < n; i++) other[i] = (z[i] + 1) % PALETTE.length;
    await plot.draw({x, y, z: other}, {zDataType: "categorical", spatialIndex: plot.get("spatialIndex")});
    return performance.now() - t;
  };
})();
</script></body></html>"""


# The same page with deck.gl's ScatterplotLayer on binary attributes (positions and colours as
# typed arrays, recoloured by replacing only the colour attribute).
DECKGL_PAGE = """<!doctype html><html><head><meta charset="utf-8"></head>
<body style="margin:0"><div id="plot" style="position:relative;width:1100px;height:640px"></div>
<script src="deckgl.js"></script><script>
window.raw = {draws: 0, drawn: null};
(async () => {
  const started = performance.now();
  const [pos, codes] = await Promise.all(["positions.bin", "codes.bin"].map(u => fetch(u).then(r => r.arrayBuffer())));
  const all = new Float32Array(pos), n = all.length / 2;
  const xy = new Float32Array(2 * n);
  for (let i = 0; i < n; i++) { xy[2 * i] = all[i]; xy[2 * i + 1] = all[n + i]; }
  const palette = PALETTE.map(h => [1, 3, 5].map(i => parseInt(h.slice(i, i + 2), 16)));
  const rgba = (shift) => { const c = new Uint8Array(4 * n), z = new Uint8Array(codes);
    for (let i = 0; i < n; i++) { const p = palette[(z[i] + shift) % palette.length];
      c[4 * i] = p[0]; c[4 * i + 1] = p[1]; c[4 * i + 2] = p[2]; c[4 * i + 3] = 200; } return c; };
  const layer = (colours) => new deckgl.ScatterplotLayer({id: "points", radiusUnits: "pixels",
    getRadius: POINT_SIZE / 2,
    data: {length: n, attributes: {getPosition: {value: xy, size: 2}, getFillColor: {value: colours, size: 4}}}});
  let rendered = null;
  const deck = new deckgl.Deck({parent: document.getElementById("plot"), width: 1100, height: 640,
    views: new deckgl.OrthographicView({}), controller: true,
    initialViewState: {target: [0, 0, 0], zoom: Math.log2(320)}, layers: [layer(rgba(0))],
    onAfterRender: () => { window.raw.draws += 1; if (rendered) { rendered(); rendered = null; } }});
  await new Promise(resolve => { rendered = resolve; });
  window.raw.drawn = performance.now() - started;
  window.raw.recolour = async () => {
    const t = performance.now();
    const done = new Promise(resolve => { rendered = resolve; });
    deck.setProps({layers: [layer(rgba(1))]});
    await done;
    return performance.now() - t;
  };
})();
</script></body></html>"""


class RawSite:
    """A static baseline page, its renderer and data, served from 127.0.0.1 in a thread."""

    def __init__(
        self,
        folder: Path,
        positions: bytes,
        codes: bytes,
        point_size: float,
        palette: list[str],
        page: str = RAW_PAGE,
        renderer: Path = RENDERER,
    ):
        folder.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(renderer, folder / renderer.name)
        (folder / "positions.bin").write_bytes(positions)
        (folder / "codes.bin").write_bytes(codes)
        (folder / "raw.html").write_text(
            page.replace("POINT_SIZE", repr(point_size)).replace("PALETTE", json.dumps(palette))
        )
        handler = functools.partial(_QuietHandler, directory=str(folder))
        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/raw.html"

    def close(self) -> None:
        self.server.shutdown()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args) -> None:
        pass


def raw_figures(browser, site: RawSite, zoom_steps: int) -> dict:
    context = browser.new_context(viewport={"width": 1500, "height": 1100})
    page = context.new_page()
    started = time.perf_counter()
    page.goto(site.url)
    page.wait_for_function("window.raw && window.raw.drawn !== null", timeout=300_000)
    paint = time.perf_counter() - started
    recolour = page.evaluate("window.raw.recolour()") / 1000
    print(f"  {site.url}: first paint {paint:.2f} s, recolour {recolour:.3f} s", file=sys.stderr, flush=True)
    fps = zoom_fps(page, None, zoom_steps, "window.raw.draws")
    heap = js_heap_mb(page)
    context.close()
    return {"paint": paint, "recolour": recolour, "fps": fps, "heap": heap}


def map_data(db: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(ids, x, y) of the default map's points, ordered by id as the app sends them."""
    con = storage.connect_read_only(db)
    try:
        xy = con.execute(
            "SELECT pair_id, x, y FROM map_points mp JOIN maps m ON m.id = mp.map_id "
            "WHERE m.is_default ORDER BY pair_id"
        ).fetchnumpy()
    finally:
        con.close()
    return xy["pair_id"], xy["x"], xy["y"]


def raw_site_for(folder: Path, x: np.ndarray, y: np.ndarray, codes: np.ndarray, deckgl: bool = False) -> RawSite:
    from ui import map_component, mapview

    layout = map_component.Layout.of(0, np.arange(len(x)), x, y)
    renderer = {"page": DECKGL_PAGE, "renderer": DECKGL} if deckgl else {}
    return RawSite(
        folder,
        layout.data,
        codes.astype(np.uint8).tobytes(),
        map_component.point_size(len(x)),
        mapview.PALETTE,
        **renderer,
    )


# --- the app's figures ---------------------------------------------------------------------------


def timed_first_paint(context, url: str, rows: int) -> tuple[float, object]:
    page = context.new_page()
    page.set_default_timeout(300_000)
    started = time.perf_counter()
    page.goto(url)
    frame = map_frame(page, timeout=300_000)
    frame.wait_for_function(f"window.curatorMap.pointsDrawn === {rows}", timeout=300_000)
    return time.perf_counter() - started, page


def lasso_and_delete(page, db: Path, out_png: Path | None) -> dict:
    """One lasso -> count -> delete -> undo cycle on the open map page; its figures."""
    frame = map_frame(page)
    draw_lasso(page, frame, LASSO)
    started = time.perf_counter()
    page.mouse.up()
    page.get_by_text(SELECTED).first.wait_for(timeout=120_000)
    select_seconds = time.perf_counter() - started
    count = selected_count(page)
    frame.wait_for_function(f"window.curatorMap.selectedCount === {count}", timeout=120_000)
    highlight_seconds = time.perf_counter() - started
    settle(page)
    if out_png:
        page.screenshot(path=str(out_png), full_page=True)
    page.get_by_label("Delete reason").fill("bench")
    page.get_by_label("Delete reason").press("Tab")
    settle(page)
    started = time.perf_counter()
    page.get_by_role("button", name="Delete", exact=True).click()
    page.get_by_text(re.compile(rf"delete: {count:,} pairs changed")).first.wait_for(timeout=120_000)
    frame.wait_for_function(f"window.curatorMap.dimCount === {count}", timeout=120_000)
    delete_seconds = time.perf_counter() - started
    deleted = scalar(db, "SELECT count(*) FROM pairs WHERE deleted_op IS NOT NULL")
    if deleted != count:
        raise SystemExit(f"the app said {count:,} pairs were deleted, the database has {deleted:,}")
    ids = deleted_ids(db, count)
    settle(page)
    page.get_by_role("button", name="Undo last operation").click()
    page.get_by_text(re.compile(r"undid operation \d+")).first.wait_for(timeout=120_000)
    frame.wait_for_function("window.curatorMap.dimCount === 0", timeout=120_000)
    settle(page)
    page.get_by_role("button", name="Clear selection").click()  # the next lasso's count is new text
    settle(page)
    page.get_by_text(SELECTED).first.wait_for(state="detached")
    return {
        "count": count,
        "select": select_seconds,
        "highlight": highlight_seconds,
        "delete": delete_seconds,
        "ids": ids,
    }


def colour_change(page, choice: str) -> float:
    """Seconds from picking `choice` under "Colour by" until the map has redrawn with it."""
    frame = map_frame(page)
    page.get_by_label("Colour by").click()
    option = page.get_by_role("option", name=choice, exact=True)
    option.wait_for()
    started = time.perf_counter()
    option.click()
    # colorBy is reported once the points are drawn with the new colours
    frame.wait_for_function(f"window.curatorMap.colorBy === {json.dumps(choice)}", timeout=120_000)
    seconds = time.perf_counter() - started
    settle(page)
    return seconds


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


def raw_select_seconds(x: np.ndarray, y: np.ndarray, page_polygon: list[list[float]]) -> float:
    started = time.perf_counter()
    points_in_polygon(x, y, page_polygon)
    return time.perf_counter() - started


# --- the run -------------------------------------------------------------------------------------


def median_of(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def print_table(rows: int, figures: dict, raw: dict, count: int | None) -> dict:
    """The figures table (medians, runs, raw / curator) and the goals; returns the medians."""
    med = {name: median_of(values) for name, values in figures.items()}
    lines = [
        ("first paint, cold (s)", "paint cold", raw["paint"], 4.0),
        ("first paint, warm (s)", "paint warm", raw["paint"], 2.0),
        ("lasso -> exact count shown (s)", "lasso -> count", raw.get("select"), 0.5),
        ("lasso -> highlighted on the map (s)", "lasso -> highlighted", None, None),
        ("delete -> committed, redrawn (s)", "delete -> redrawn", raw.get("update"), None),
        ("lasso -> delete redrawn (s)", "lasso -> delete redrawn", None, 1.0),
        ("colour-by change (s)", "colour change", raw["recolour"], 0.5),
        ("zoom frames per second", "zoom fps", raw["fps"], None),
        ("JS heap (MB)", "heap", raw["heap"], None),
    ]
    print(
        f"\n{rows:,} pairs (fake uniform map), Chromium headless (software WebGL), 2 cores"
        + (f"; lasso: {count:,} pairs" if count else "")
    )
    print(f"{'figure':<34} {'curator':>9} {'raw':>9} {'raw/cur':>8} {'goal':>6}   runs")
    for label, key, raw_value, goal in lines:
        if not figures.get(key):
            continue
        value = med[key]
        ratio = ""
        if raw_value:
            ratio = f"{(value / raw_value if key in ('zoom fps',) else raw_value / value):.2f}x"
            if key == "heap":
                ratio = f"{raw_value / value:.2f}x"
        goal_text = f"<= {goal:g}" if goal else ""
        met = "" if goal is None else (" met" if value <= goal else " NOT met")
        raw_text = f"{raw_value:.3f}" if raw_value else "-"
        print(
            f"{label:<34} {value:9.3f} {raw_text:>9} {ratio:>8} {goal_text:>6}{met}   "
            + " ".join(f"{v:.3f}" for v in figures[key])
        )
    return med


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--zoom-steps", type=int, default=40)
    parser.add_argument(
        "--positions-only",
        action="store_true",
        help="regl-scatterplot and deck.gl alone on --rows random points (no database, no app)",
    )
    parser.add_argument(
        "--renderers",
        default="regl-scatterplot,deck.gl",
        help="with --positions-only: which renderers, comma-separated",
    )
    parser.add_argument("--data", type=Path, default=ingest_bench.DEFAULT_DATA)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    build_renderers()
    launch = {
        "executable_path": CHROMIUM,
        "headless": True,
        "args": ["--no-sandbox", "--disable-background-networking", "--enable-unsafe-swiftshader"],
    }
    ingest_bench.OUT_DIR.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="curator-bench-app-", dir=ingest_bench.OUT_DIR) as tmp:
        tmp = Path(tmp)
        if args.positions_only:
            rng = np.random.default_rng(polygon_bench.SEED)
            x, y = rng.uniform(-10, 10, (2, args.rows)).astype(np.float32)
            codes = rng.integers(0, 12, args.rows)
            sites = {
                name: raw_site_for(tmp / name, x, y, codes, deckgl=name == "deck.gl")
                for name in args.renderers.split(",")
            }
            runs: dict[str, list[dict]] = {name: [] for name in sites}
            with sync_playwright() as p:
                browser = p.chromium.launch(**launch)
                for _ in range(args.repeat):  # alternating, so that load swings hit both alike
                    for name, site in sites.items():
                        runs[name].append(raw_figures(browser, site, args.zoom_steps))
                browser.close()
            for site in sites.values():
                site.close()
            print(
                f"{args.rows:,} random points, each renderer alone, Chromium headless (software WebGL), "
                f"{args.repeat} run(s), medians"
            )
            print(f"{'renderer':<18} {'paint s':>8} {'recolour s':>11} {'zoom fps':>9} {'heap MB':>8}")
            for name, values in runs.items():
                med = {key: median_of([r[key] for r in values]) for key in ("paint", "recolour", "fps", "heap")}
                print(f"{name:<18} {med['paint']:8.3f} {med['recolour']:11.3f} {med['fps']:9.2f} {med['heap']:8.1f}")
            return 0

        base = polygon_bench.build_database(args.rows, args.data, fresh=False)
        db = tmp / "bench.duckdb"
        shutil.copyfile(base, db)
        ids, x, y = map_data(db)
        from ui import mapview

        codes = np.zeros(len(ids), dtype=np.uint8)  # the app's default colouring: by source
        sources = scalar_sources(db, ids)
        top = [name for name, _ in sources.value_counts().items()][: mapview.MAX_LEGEND]
        codes[:] = np.where(
            sources.isin(top), sources.map({n: i for i, n in enumerate(top)}).fillna(len(top)), len(top)
        ).astype(np.uint8)
        site = raw_site_for(tmp / "raw", x, y, codes)
        figures: dict[str, list[float]] = {
            k: []
            for k in (
                "paint cold",
                "paint warm",
                "lasso -> count",
                "lasso -> highlighted",
                "delete -> redrawn",
                "lasso -> delete redrawn",
                "colour change",
                "zoom fps",
                "heap",
            )
        }
        raw_runs, raw_updates, raw_selects, count = [], [], [], None
        with sync_playwright() as p:
            browser = p.chromium.launch(**launch)
            for run in range(args.repeat):
                raw_runs.append(raw_figures(browser, site, args.zoom_steps))
                server, url = start_app(db, tmp / f"app{run}.log")
                try:
                    context = browser.new_context(viewport={"width": 1500, "height": 1100})
                    cold, first = timed_first_paint(context, url, args.rows)
                    # untimed: the map keeps its spatial index for the next visit (IndexedDB)
                    map_frame(first).wait_for_function("window.curatorMap.indexStored", timeout=120_000)
                    first.close()
                    warm, page = timed_first_paint(context, url, args.rows)
                    figures["paint cold"].append(cold)
                    figures["paint warm"].append(warm)
                    settle(page)
                    shot = ingest_bench.OUT_DIR / f"app_{args.rows}.png" if run == 0 else None
                    cycle = lasso_and_delete(page, db, shot)
                    count = cycle["count"]
                    figures["lasso -> count"].append(cycle["select"])
                    figures["lasso -> highlighted"].append(cycle["highlight"])
                    figures["delete -> redrawn"].append(cycle["delete"])
                    figures["lasso -> delete redrawn"].append(cycle["select"] + cycle["delete"])
                    raw_updates.append(raw_update_seconds(db, cycle["ids"]))
                    box_polygon = lasso_in_map_coordinates(page)
                    raw_selects.append(raw_select_seconds(x, y, box_polygon))
                    figures["colour change"].append(colour_change(page, "truncated"))
                    frame = map_frame(page)
                    figures["zoom fps"].append(zoom_fps(page, frame, args.zoom_steps))
                    figures["heap"].append(js_heap_mb(frame))
                    print(
                        f"run {run + 1}: paint cold {cold:.2f} s, warm {warm:.2f} s; lasso {count:,} pairs: "
                        f"count {cycle['select']:.2f} s, delete {cycle['delete']:.2f} s; colour "
                        f"{figures['colour change'][-1]:.2f} s; zoom {figures['zoom fps'][-1]:.1f} fps",
                        flush=True,
                    )
                    context.close()
                except Exception:
                    print("app log (tail):\n" + (tmp / f"app{run}.log").read_text(errors="replace")[-4000:])
                    raise
                finally:
                    stop_app(server)
            browser.close()
        site.close()
    raw = {key: median_of([r[key] for r in raw_runs]) for key in ("paint", "recolour", "fps", "heap")}
    raw["update"] = median_of(raw_updates)
    raw["select"] = median_of(raw_selects)
    med = print_table(args.rows, figures, raw, count)
    print(
        f"raw: the renderer alone (first paint, recolour, fps, heap); points_in_polygon (lasso); "
        f"bare DuckDB UPDATE (delete)\nscreenshot: {ingest_bench.OUT_DIR / f'app_{args.rows}.png'}"
    )
    if args.json:
        print(json.dumps({"rows": args.rows, "selected": count, "runs": figures, "medians": med, "raw": raw}, indent=2))
    return 0


def scalar_sources(db: Path, ids: np.ndarray):
    import pandas as pd

    con = storage.connect_read_only(db)
    try:
        frame = con.execute("SELECT id, source FROM pairs ORDER BY id").df()
    finally:
        con.close()
    return pd.Series(frame.set_index("id").loc[ids, "source"].to_numpy())


def lasso_in_map_coordinates(page) -> list[list[float]]:
    """The polygon of the last lasso, in map coordinates, as the map sent it to the server."""
    return map_frame(page).evaluate("window.curatorMap.lastPolygon")


if __name__ == "__main__":
    sys.exit(main())
