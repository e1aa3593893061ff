"""Is the app usable while jobs run? (issue 25) Each job alone, then the same job with
`curator app` open and Chromium probing its pages, on copies of the same real mixture.

    .venv/bin/python bench/concurrency.py                          # ~3k pairs; embed, map, ifd, duplicates
    .venv/bin/python bench/concurrency.py --per-family 1700        # ~10k pairs (the issue's size)
    .venv/bin/python bench/concurrency.py --jobs embed,duplicates --ifd-limit 120
    .venv/bin/python bench/concurrency.py --probe-every 0          # the app open but not used

What it does:

1. Builds a real mixture of ../shared/data (bench/mixtures.py: six families, --per-family
   records each) and gives it a `--fast` map, so that the app has a map to show from the start.
2. For each job in turn, on two fresh copies of the database the job before it left:
   `curator embed` (the exact model: the slow path), `curator map --rebuild` (exact vectors),
   `curator quality ifd --limit N`, `curator duplicates`:
   - alone: the job's wall time;
   - with the app: a real `curator app` on 127.0.0.1, the job started, and while it runs a
     fresh Chromium tab every --probe-every seconds loads the map page (until the map has drawn
     its points) and the Clusters page (until its blob table is shown), alternately.
3. Prints per job: wall time alone and with the app (the slowdown: goal <= 10%), the job's own
   CPU seconds alone and with the app, the probes that showed data and within 6 s (goal: all),
   the slowest probe, and the longest time the job held the database in one block
   (jobs.longest_hold_s, which each job records).

On 2 cores the job, the app's server and Chromium (which draws WebGL in software here) share the
cores: a wall time that grows while the job's CPU time does not is that sharing, not the job
waiting for the database.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `bench` and `storage` importable

from bench import mixtures  # noqa: E402
from bench.app_driver import map_frame, start_app, stop_app  # noqa: E402
from storage import db as storage_db  # noqa: E402

OUT_DIR = ROOT / "bench" / "out" / "concurrency"
DEFAULT_DATA = ROOT.parent / "shared" / "data"
GOAL_SECONDS = 6.0
BLOB_TABLE = "[data-testid='stDataFrame']"


def curator_args(job: str, ifd_limit: int) -> list[str]:
    return {
        "embed": ["embed"],
        "map": ["map", "--rebuild"],
        "ifd": ["quality", "ifd", "--limit", str(ifd_limit)],
        "duplicates": ["duplicates"],
    }[job]


def copy_database(source: Path, target: Path) -> None:
    """The database and what the tool keeps beside it (vectors, projections)."""
    shutil.copy2(source, target)
    for suffix in (".vectors", ".maps"):
        if Path(f"{source}{suffix}").exists():
            shutil.copytree(f"{source}{suffix}", f"{target}{suffix}")


def run_job(db: Path, args: list[str]) -> subprocess.Popen:
    exe = Path(sys.executable).with_name("curator")
    return subprocess.Popen([str(exe), "--db", str(db), *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def reap(job: subprocess.Popen, args: list[str]) -> float:
    """Wait for the job; its own CPU seconds (user + system). os.wait4 gives this child's usage
    alone: the same work costs the same CPU whether or not the app runs beside it, so a wall
    time that grows while the CPU time does not is the cores being shared, not lock waits."""
    _, status, usage = os.wait4(job.pid, 0)
    job.returncode = os.waitstatus_to_exitcode(status)
    if job.returncode != 0:
        raise SystemExit(f"curator {' '.join(args)} failed (exit {job.returncode})")
    return usage.ru_utime + usage.ru_stime


def longest_hold(db: Path, kind: str) -> float | None:
    con = storage_db.connect_read_only(db, wait=30)
    try:
        row = con.execute("SELECT longest_hold_s FROM jobs WHERE kind = ? ORDER BY id DESC LIMIT 1", [kind]).fetchone()
    finally:
        con.close()
    return row[0] if row else None


def probe(browser, url: str, page_name: str) -> tuple[bool, float, str]:
    """Load one page in a fresh tab: (showed data, seconds, what it showed instead)."""
    page = browser.new_page(viewport={"width": 1400, "height": 900})
    started = time.perf_counter()
    try:
        if page_name == "map":
            page.goto(url, wait_until="domcontentloaded")
            map_frame(page, timeout=30_000)
        else:
            page.goto(f"{url}/clusters", wait_until="domcontentloaded")
            page.locator(BLOB_TABLE).first.wait_for(timeout=30_000)
        return True, time.perf_counter() - started, ""
    except Exception:  # noqa: BLE001  (any failure to show data is what is counted)
        text = page.locator("body").inner_text()[:160].replace("\n", " ")
        return False, time.perf_counter() - started, text
    finally:
        page.close()


def with_app(db: Path, args: list[str], probe_every: float, work: Path) -> dict:
    from playwright.sync_api import sync_playwright

    server, url = start_app(db, work / "app.log")
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
            probe(browser, url, "map")  # warm: the app's first load is not the job's doing
            started = time.perf_counter()
            job = run_job(db, args)
            probes = []
            while not _ended(job):
                if probe_every <= 0:  # the app open and idle: what having it open costs
                    time.sleep(0.2)
                    continue
                probes.append(probe(browser, url, ("map", "clusters")[len(probes) % 2]))
                time.sleep(max(0.0, probe_every - probes[-1][1]))
            cpu = reap(job, args)
            seconds = time.perf_counter() - started
            browser.close()
    finally:
        stop_app(server)
    return {"seconds": seconds, "cpu": cpu, "probes": probes}


def _ended(job: subprocess.Popen) -> bool:
    """Whether the job has exited, without reaping it (reap wants its resource usage)."""
    return os.waitid(os.P_PID, job.pid, os.WEXITED | os.WNOHANG | os.WNOWAIT) is not None


def alone(db: Path, args: list[str]) -> tuple[float, float]:
    """(wall seconds, CPU seconds) of the job run by itself."""
    started = time.perf_counter()
    cpu = reap(run_job(db, args), args)
    return time.perf_counter() - started, cpu


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="the shared real-data folder")
    parser.add_argument("--per-family", type=int, default=500, help="records per family of the mixture")
    parser.add_argument("--jobs", default="embed,map,ifd,duplicates", help="which jobs, in this order")
    parser.add_argument("--ifd-limit", type=int, default=500, help="pairs `quality ifd` scores")
    parser.add_argument(
        "--probe-every", type=float, default=3.0, help="seconds between probes (0: the app open, never loaded)"
    )
    args = parser.parse_args()

    OUT_DIR.mkdir(parents=True, exist_ok=True)
    base = OUT_DIR / f"mixture-{args.per_family}.duckdb"
    if not base.exists():
        print(f"building the mixture in {base}", file=sys.stderr)
        mixtures.build(base, args.data, args.per_family)
        subprocess.run(
            [str(Path(sys.executable).with_name("curator")), "--db", str(base), "map", "--fast", "--name", "fast"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        before = base
        for n, job in enumerate(args.jobs.split(",")):
            command = curator_args(job, args.ifd_limit)
            solo, shared = work / f"{n}-alone.duckdb", work / f"{n}-app.duckdb"
            copy_database(before, solo)
            copy_database(before, shared)
            solo_s, solo_cpu = alone(solo, command)
            result = with_app(shared, command, args.probe_every, work)
            probes = result["probes"]
            shown = [p for p in probes if p[0]]
            rows.append(
                {
                    "job": " ".join(command),
                    "alone s": solo_s,
                    "with app s": result["seconds"],
                    "slowdown": result["seconds"] / solo_s - 1,
                    "cpu alone s": solo_cpu,
                    "cpu with app s": result["cpu"],
                    "probes": len(probes),
                    "showed data": len(shown),
                    f"within {GOAL_SECONDS:.0f} s": sum(p[1] <= GOAL_SECONDS for p in shown),
                    "slowest probe s": max((p[1] for p in probes), default=0.0),
                    "longest hold s": longest_hold(shared, "ifd" if job == "ifd" else job),
                    "failed probes": [p[2] for p in probes if not p[0]][:3],
                }
            )
            print(rows[-1], flush=True)
            before = solo  # the next job starts from what this one left
    print(f"\n## {base.name}: the app probed while each job runs ({args.probe_every:.0f} s between probes)")
    columns = ["job", "alone s", "with app s", "slowdown", "job CPU s alone / with app", "probes showing data"]
    print("| " + " | ".join([*columns, "within 6 s", "slowest probe s", "longest hold s"]) + " |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        hold = "-" if r["longest hold s"] is None else f"{r['longest hold s']:.2f}"
        print(
            f"| `{r['job']}` | {r['alone s']:.1f} | {r['with app s']:.1f} | {r['slowdown']:+.0%} | "
            f"{r['cpu alone s']:.1f} / {r['cpu with app s']:.1f} | "
            f"{r['showed data']}/{r['probes']} | {r['within 6 s']}/{r['probes']} | "
            f"{r['slowest probe s']:.1f} | {hold} |"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
