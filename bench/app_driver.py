"""Drives a real `curator app` and its map component in a browser: the helpers the web app
benchmarks (bench/app.py, bench/concurrency.py), the browser tests (tests/test_browser*.py,
tests/test_app_server.py) and scripts/map_screenshot.py share.

start_app/stop_app run `curator app` as a child process on a free loopback port; the others take
a Playwright page or the map component's frame. Playwright itself is not imported here.
"""

from __future__ import annotations

import re
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAP_FRAME = "iframe[title='ui.map_component.curator_map']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_app(
    db: Path, log: Path, timeout: float = 120, env: dict | None = None, browser: bool = False
) -> tuple[subprocess.Popen, str]:
    """A real `curator app` on a free loopback port, answering its health check; (process, URL).
    The log goes to a file: an undrained pipe fills and then blocks the server mid-request."""
    port = free_port()
    curator = Path(sys.executable).with_name("curator")
    with open(log, "wb") as out:
        server = subprocess.Popen(
            [str(curator), "--db", str(db), "app", "--port", str(port), "--browser" if browser else "--no-browser"],
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
        )
    url = f"http://127.0.0.1:{port}"
    deadline = time.time() + timeout
    while time.time() < deadline:
        try:
            with urllib.request.urlopen(url + "/_stcore/health", timeout=2):
                return server, url
        except OSError:
            if server.poll() is not None:
                break
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


def map_frame(page, index: int = 0, timeout: float = 120_000):
    """The map component's frame (the index-th map on the page), once it has drawn its points."""
    element = page.locator(MAP_FRAME).nth(index)
    element.wait_for(timeout=timeout)
    frame = element.element_handle().content_frame()
    frame.wait_for_function("window.curatorMap && window.curatorMap.pointsDrawn > 0", timeout=timeout)
    return frame


def map_report(frame) -> dict:
    """What the component reports about itself (window.curatorMap), functions left out."""
    return frame.evaluate("JSON.parse(JSON.stringify(window.curatorMap))")


def plot_box(frame) -> dict:
    """The plot's box in page coordinates, and the square the map's [-1, 1] view fills in it."""
    box = frame.locator("#plot").bounding_box()
    half = min(box["width"], box["height"]) / 2
    return {**box, "cx": box["x"] + box["width"] / 2, "cy": box["y"] + box["height"] / 2, "half": half}


def draw_lasso(page, frame, path: list[tuple[float, float]], shape: str = "lasso") -> None:
    """Draw a lasso (or box) on the map with the mouse in its Lasso (Box) mode, leaving the
    button down: the caller releases it (`page.mouse.up()`) and times what follows. `path` is
    in fractions of the map's half side from its centre, y up."""
    frame.click(f"#mode-{shape}")
    box = plot_box(frame)
    points = [(box["cx"] + dx * box["half"], box["cy"] - dy * box["half"]) for dx, dy in path]
    page.mouse.move(*points[0])
    page.mouse.down()
    for (x0, y0), (x1, y1) in zip(points, points[1:]):
        for step in range(1, 9):  # the lasso takes a point every few pixels and milliseconds
            page.mouse.move(x0 + (x1 - x0) * step / 8, y0 + (y1 - y0) * step / 8)
            page.wait_for_timeout(16)


def select_with_lasso(page, frame, path: list[tuple[float, float]]) -> int:
    """Draw a lasso along `path` (see draw_lasso), release it, and return how many pairs the
    page says are selected once the rerun it starts has finished."""
    draw_lasso(page, frame, path)
    page.mouse.up()
    settle(page)
    return selected_count(page)


def settle(page) -> None:
    """Wait until Streamlit has finished the rerun the last action started."""
    page.wait_for_timeout(150)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=120_000)


SELECTED = re.compile(r"([\d,]+) pairs? selected")


def selected_count(page) -> int:
    text = page.get_by_text(SELECTED).first.inner_text()
    return int(SELECTED.search(text).group(1).replace(",", ""))
