"""The web app as a user drives it: a real `curator app` server and a real headless Chromium.

Screenshots of every step are kept in test-artifacts/browser/ (git-ignored) for a person to
look at. Chromium is Debian's (`make test` installs it with apt when missing); Playwright only
drives it, `playwright install` is never needed.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest

from bench.app_driver import (
    draw_lasso,
    map_frame,
    map_report,
    plot_box,
    select_with_lasso,
    selected_count,
    settle,
    start_app,
    stop_app,
)
from jobs import operations
from tests.conftest import ROOT, copy_to, query, run_console

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
pytestmark = [
    pytest.mark.skipif(
        not Path(CHROMIUM).exists(), reason="needs Debian's chromium (`make test` installs it with apt)"
    ),
    pytest.mark.slow,  # a real server and Chromium on the demo map (~3 min); test_browser_chat.py imports this
]
# A rough pentagon over the middle of the map, in fractions of its half side.
PENTAGON = [(-0.5, -0.4), (0.4, -0.5), (0.5, 0.2), (0, 0.5), (-0.4, 0.3), (-0.5, -0.4)]


@pytest.fixture(scope="module")
def app_db(demo_built, tmp_path_factory) -> Path:
    """A copy of the session's demo database: the tests delete pairs and add a response map."""
    return copy_to(demo_built[0], tmp_path_factory.mktemp("app") / "demo.duckdb")


@pytest.fixture(scope="module")
def app_url(app_db):
    server, url = start_app(app_db, app_db.with_name("app.log"))
    yield url
    stop_app(server)


@pytest.fixture(scope="module")
def playwright_driver():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        yield p


@pytest.fixture(scope="module")
def page(app_url, playwright_driver):
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    browser = playwright_driver.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
    page = browser.new_page(viewport={"width": 1500, "height": 1100})
    page.set_default_timeout(60_000)
    page.goto(app_url)
    yield page
    browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _deleted(db) -> int:
    return query(db, "SELECT count(*) FROM pairs_view WHERE deleted")[0][0]


def _point_on_page(frame, index: int) -> tuple[float, float]:
    """Where the map draws point `index`, in page coordinates (pan mode: a drag pans, a click picks)."""
    frame.click("#mode-pan")
    box = plot_box(frame)
    x, y = frame.evaluate(f"window.curatorMap.screenOf({index})")
    return box["x"] + x, box["y"] + y


def _overlap(a, b) -> bool:
    return a[0] < b[2] and b[0] < a[2] and a[1] < b[3] and b[1] < a[3]


def test_map_draws_every_point_with_labels_that_never_collide(page, app_db):
    pairs = query(app_db, "SELECT count(*) FROM pairs")[0][0]
    frame = map_frame(page)
    frame.wait_for_function(f"window.curatorMap.pointsDrawn === {pairs}")
    assert page.get_by_text(f"{pairs:,} points").first.is_visible()
    report = map_report(frame)
    labels = {label for (label,) in query(app_db, "SELECT label FROM clusters")}
    assert len(report["labelsShown"]) >= 5 and set(report["labelsShown"]) <= labels
    boxes = report["labelBoxes"]
    assert not any(_overlap(a, b) for i, a in enumerate(boxes) for b in boxes[i + 1 :])
    # The positions came once, as one binary blob named by its digest.
    assert len(report["fetched"]) == len(set(report["fetched"]))
    _shot(page, "1-map")


def _drawn(frame) -> list[tuple[int, float, float]]:
    """(density level, opacity, size) of every point as the map draws it now."""
    return frame.evaluate(
        "Array.from({length: curatorMap.n}, (_, i) => "
        "[curatorMap.densityOf(i), curatorMap.opacityOf(i), curatorMap.sizeOf(i)])"
    )


def test_dense_points_are_drawn_lighter_and_smaller_than_isolated_ones(page):
    frame = map_frame(page)
    by_level = {level: (opacity, size) for level, opacity, size in _drawn(frame)}
    opacities, sizes = zip(*(by_level[level] for level in sorted(by_level)))
    assert list(opacities) == sorted(opacities, reverse=True)  # the denser, the lighter
    assert list(sizes) == sorted(sizes, reverse=True)  # and the smaller
    # The demo map's piles of near-identical prompts are light, its isolated points strong.
    assert opacities[0] >= 0.7 and opacities[-1] <= 0.25
    assert sizes[-1] < sizes[0]
    # Density contours, drawn under the labels, and the toolbar toggle that hides them.
    assert map_report(frame)["contourLines"] > 0
    frame.click("#contours")
    assert map_report(frame)["contourLines"] == 0 and frame.get_attribute("#contours", "aria-pressed") == "false"
    frame.click("#contours")
    assert map_report(frame)["contourLines"] > 0


def test_zooming_in_turns_coarse_labels_into_fine_ones(page, app_db):
    frame = map_frame(page)
    # A point drawn half transparent where points overlap: zoomed in, they overlap less.
    opacities = [opacity for _, opacity, _ in _drawn(frame)]
    point = min(range(len(opacities)), key=lambda i: abs(opacities[i] - 0.3))
    fine = {label for (label,) in query(app_db, "SELECT label FROM clusters WHERE level = 'fine'")}
    coarse = {label for (label,) in query(app_db, "SELECT label FROM clusters WHERE level = 'coarse'")}
    assert coarse - fine, "the demo map has coarse labels of its own"
    before = set(map_report(frame)["labelsShown"])
    assert before & (coarse - fine)  # zoomed out: coarse labels
    box = plot_box(frame)
    page.mouse.move(box["cx"], box["cy"])
    for _ in range(6):
        page.mouse.wheel(0, -240)
        page.wait_for_timeout(100)
    frame.wait_for_function("Math.hypot(...window.curatorMap.zoom) > 1.8", timeout=20_000)
    page.wait_for_timeout(300)
    after = set(map_report(frame)["labelsShown"])
    assert after and after <= fine | coarse and after & (fine - coarse)
    assert frame.evaluate(f"curatorMap.opacityOf({point})") > opacities[point]
    _shot(page, "1b-zoomed")
    frame.click("#fit")
    page.wait_for_timeout(800)


def test_hover_shows_the_start_of_the_pair(page, app_db):
    frame = map_frame(page)
    # The zoom before rested the pointer on points too: wait for this hover, not that one.
    frame.evaluate("window.curatorMap.hover = null")
    page.mouse.move(*_point_on_page(frame, map_report(frame)["n"] // 2))
    frame.wait_for_function("window.curatorMap.hover !== null", timeout=20_000)
    hover = map_report(frame)["hover"]
    ((prompt, source),) = query(app_db, "SELECT prompt, source FROM pairs WHERE id = ?", [int(hover["id"])])
    tooltip = frame.locator("#tooltip")
    assert tooltip.is_visible()
    assert prompt[:40] in tooltip.inner_text() and source in tooltip.inner_text()
    _shot(page, "1c-hover")
    page.mouse.move(1, 1)


def test_lasso_selects_exactly_deletes_and_undo_restores(page, app_db):
    frame = map_frame(page)
    count = select_with_lasso(page, frame, PENTAGON)
    assert count > 0
    frame.wait_for_function(f"window.curatorMap.selectedCount === {count}")
    # Exact over every pair: the polygon the map sent, resolved by the database-side selector.
    polygon = map_report(frame)["lastPolygon"]
    assert len(operations.select(app_db, {"polygon": polygon})) == count
    _shot(page, "2-lasso-selection")

    page.get_by_label("Delete reason").fill("browser test")
    page.get_by_role("button", name="Delete", exact=True).click()
    settle(page)
    page.get_by_text(re.compile(r"delete: [\d,]+ pairs changed")).wait_for()
    assert _deleted(app_db) == count
    (reason,) = query(app_db, "SELECT reason FROM operations WHERE kind = 'delete' ORDER BY id DESC LIMIT 1")[0]
    assert reason == "browser test"
    frame.wait_for_function(f"window.curatorMap.dimCount === {count}")  # greyed on the map
    _shot(page, "3-deleted")

    page.get_by_role("button", name="Undo last operation").click()
    settle(page)
    page.get_by_text(re.compile(r"undid operation \d+")).wait_for()
    assert _deleted(app_db) == 0
    frame.wait_for_function("window.curatorMap.dimCount === 0")
    _shot(page, "4-undone")
    page.get_by_role("button", name="Clear selection").click()
    settle(page)


def test_box_selects_the_same_way(page, app_db):
    frame = map_frame(page)
    draw_lasso(page, frame, [(-0.3, -0.3), (0.3, 0.3)], shape="box")
    page.mouse.up()
    settle(page)
    count = selected_count(page)
    polygon = map_report(frame)["lastPolygon"]
    assert len(polygon) == 4 and len(operations.select(app_db, {"polygon": polygon})) == count > 0
    page.get_by_role("button", name="Clear selection").click()
    settle(page)


def test_click_opens_the_pair(page, app_db):
    frame = map_frame(page)
    page.mouse.click(*_point_on_page(frame, 3))
    settle(page)
    page.get_by_text("1 pair selected").wait_for()
    label = page.get_by_text(re.compile(r"pair \d+, clicked on map")).first.inner_text()
    pair_id = int(re.search(r"pair (\d+), clicked", label).group(1))
    ((prompt,),) = query(app_db, "SELECT prompt FROM pairs WHERE id = ?", [pair_id])
    # The page draws the panel in steps as the rerun's elements arrive: wait for the pair's text
    # (one suite run read the text area while it was still empty).
    from playwright.sync_api import expect

    expect(page.locator("textarea[aria-label='prompt']")).to_have_value(prompt, timeout=20_000)
    page.get_by_role("button", name="Clear selection").click()
    settle(page)


def test_colour_change_sends_codes_not_positions(page, app_db):
    frame = map_frame(page)
    fetched = map_report(frame)["fetched"]
    page.get_by_label("Colour by").click()
    page.get_by_role("option", name="topic", exact=True).click()
    frame.wait_for_function("window.curatorMap.colorBy === 'topic'")
    settle(page)
    report = map_report(frame)
    new = report["fetched"][len(fetched) :]
    assert len(new) == 1  # one uint8 code per point; the positions stay where they were
    biggest = query(
        app_db,
        """SELECT c.label FROM clusters c JOIN maps m ON m.id = c.map_id AND m.is_default
                               WHERE c.level = 'fine' ORDER BY c.size DESC, c.id LIMIT 1""",
    )[0][0]
    assert biggest in frame.locator("#legend").inner_text()
    _shot(page, "4b-topic-colours")
    page.get_by_label("Colour by").click()
    page.get_by_role("option", name="source", exact=True).click()
    frame.wait_for_function("window.curatorMap.colorBy === 'source'")
    settle(page)
    assert len(map_report(frame)["fetched"]) == len(fetched) + 1  # source's codes: cached in the browser


def test_keyword_search_highlights_hits(page, app_db, app_url):
    page.goto(app_url + "/search")
    (prompt,) = query(app_db, "SELECT prompt FROM pairs ORDER BY id LIMIT 1")[0]
    word = max(re.findall(r"[A-Za-z]+", prompt), key=len)  # a word the data surely holds
    expected = query(
        app_db, "SELECT count(*) FROM pairs WHERE prompt ILIKE ? OR response ILIKE ?", [f"%{word}%", f"%{word}%"]
    )[0][0]
    assert expected > 0
    page.get_by_label("Text").fill(word)
    page.get_by_label("Text").press("Enter")  # Streamlit commits a text input on Enter (or blur)
    settle(page)
    page.get_by_role("button", name="Search", exact=True).click()
    settle(page)
    assert selected_count(page) == expected
    map_frame(page).wait_for_function(f"window.curatorMap.selectedCount === {expected}")
    _shot(page, "5-search")


def test_export_writes_a_file(page, app_db, app_url, tmp_path):
    page.goto(app_url + "/export")
    out = tmp_path / "export"
    page.get_by_label("Directory").fill(str(out))
    page.get_by_label("Directory").press("Enter")
    settle(page)
    page.get_by_role("button", name="Export", exact=True).click()
    settle(page)
    said = page.get_by_text(re.compile(r"wrote [\d,]+ training pairs")).inner_text()
    manifest = json.loads((out / "manifest.json").read_text())
    train = [json.loads(line) for line in (out / "train.jsonl").read_text().splitlines()]
    val = [json.loads(line) for line in (out / "val.jsonl").read_text().splitlines()]
    # Every kept pair is written once (train or val) but those the evaluation-set check removed,
    # and the page says the counts the files hold.
    kept = query(app_db, "SELECT prompt FROM pairs_view WHERE NOT deleted")
    removed = manifest["pairs"]["removed_by_eval_check"] or 0
    assert len(kept) > 0 and len(train) + len(val) == len(kept) - removed
    assert {r["prompt"] for r in train + val} <= {row[0] for row in kept}
    assert f"wrote {len(train):,} training pairs and {len(val):,} validation pairs" in said
    _shot(page, "6-export")


def test_without_webgl_the_page_says_so(app_url, playwright_driver):
    browser = playwright_driver.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=["--no-sandbox", "--disable-webgl", "--disable-3d-apis"]
    )
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.goto(app_url)
    page.get_by_text("The map needs WebGL").first.wait_for(timeout=60_000)
    _shot(page, "7-no-webgl")
    browser.close()


def test_twin_view_shows_one_selection_on_both_maps(page, app_db, app_url):
    # Last in this module: it adds a response map to the shared demo database.
    result = run_console("--db", app_db, "map", "--field", "response")
    assert result.returncode == 0, result.stderr
    page.goto(app_url)
    map_frame(page)
    page.get_by_text("Twin view (prompt and response maps)").click()
    settle(page)
    prompt_map, response_map = map_frame(page, 0), map_frame(page, 1)
    pairs = query(app_db, "SELECT count(*) FROM pairs")[0][0]
    response_map.wait_for_function(f"window.curatorMap.pointsDrawn === {pairs}")
    draw_lasso(page, prompt_map, PENTAGON)
    page.mouse.up()
    settle(page)
    count = selected_count(page)
    assert count > 0
    for frame in (prompt_map, response_map):  # every pair is on both maps
        frame.wait_for_function(f"window.curatorMap.selectedCount === {count}")
    assert map_report(prompt_map)["fetched"][0] != map_report(response_map)["fetched"][0]  # two layouts
    _shot(page, "8-twin")


def test_pages_have_addresses_that_read_and_a_title(page, app_url):
    for path, title in [("/", "Map"), ("/clusters", "Clusters"), ("/versions", "Versions"), ("/jobs", "Jobs")]:
        page.goto(app_url + path)
        settle(page)
        page.get_by_role("heading", name=title, exact=True).first.wait_for()
        assert "Page not found" not in page.locator("body").inner_text()
