"""A screenshot of the app's map page, as a user opens it: the pictures in docs/ come from here.

    .venv/bin/python scripts/map_screenshot.py DB OUT.png [--color-by source] [--size 1400x900]

Starts a real `curator app` on DB (bench/app_driver.py), opens the Map page in Debian's
headless Chromium, waits until every point is drawn, and saves the page.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run as a script: make `tests` importable

from bench import app_driver  # noqa: E402  (after the path fix above)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("db", type=Path)
    parser.add_argument("out", type=Path)
    parser.add_argument("--size", default="1400x900", help="browser window, WIDTHxHEIGHT")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    width, height = (int(v) for v in args.size.split("x"))
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as tmp:
        server, url = app_driver.start_app(args.db, Path(tmp) / "app.log")
        try:
            with sync_playwright() as driver:
                browser = driver.chromium.launch(executable_path=args.chromium, headless=True, args=["--no-sandbox"])
                page = browser.new_page(viewport={"width": width, "height": height})
                page.goto(url, timeout=180_000)
                app_driver.map_frame(page, timeout=300_000)
                app_driver.settle(page)
                page.wait_for_timeout(1500)  # labels and contours are drawn a frame after the points
                args.out.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(args.out))
                browser.close()
        finally:
            app_driver.stop_app(server)
    print(args.out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
