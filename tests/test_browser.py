"""The web app as a user drives it: a real `curator app` server and a real headless Chromium.

Screenshots of every step are kept in test-artifacts/browser/ (git-ignored) for a person to
look at. Chromium is Debian's (`make test` installs it with apt when missing); Playwright only
drives it, `playwright install` is never needed.
"""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bench.app import draw_lasso, start_app, stop_app
from tests.conftest import ROOT, query, run_console

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = ROOT / "test-artifacts" / "browser"
pytestmark = pytest.mark.skipif(not Path(CHROMIUM).exists(),
                                reason="needs Debian's chromium (`make test` installs it with apt)")


@pytest.fixture(scope="module")
def app_db(tmp_path_factory) -> Path:
    db = tmp_path_factory.mktemp("app") / "demo.duckdb"
    result = run_console("--db", db, "demo")
    assert result.returncode == 0, result.stderr
    return db


@pytest.fixture(scope="module")
def app_url(app_db):
    server, url = start_app(app_db, app_db.with_name("app.log"))
    yield url
    stop_app(server)


@pytest.fixture(scope="module")
def page(app_url):
    from playwright.sync_api import sync_playwright

    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 1500, "height": 1100})
        page.set_default_timeout(60_000)
        page.goto(app_url)
        yield page
        browser.close()


def _shot(page, name: str) -> None:
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def _settle(page) -> None:
    """Wait until Streamlit has finished the rerun the last action started."""
    page.wait_for_timeout(300)
    page.wait_for_function("() => !document.querySelector('[data-testid=\"stStatusWidget\"]')", timeout=60_000)


def _selected_count(page) -> int:
    text = page.get_by_text(re.compile(r"[\d,]+ pairs selected")).first.inner_text()
    return int(re.search(r"([\d,]+) pairs selected", text).group(1).replace(",", ""))


def _deleted(db) -> int:
    return query(db, "SELECT count(*) FROM pairs_view WHERE deleted")[0][0]


def test_map_loads_with_the_demo_points(page, app_db):
    page.wait_for_selector(".js-plotly-plot .scattergl, .js-plotly-plot canvas")
    pairs = query(app_db, "SELECT count(*) FROM pairs")[0][0]
    assert page.get_by_text(f"{pairs:,} points").first.is_visible()
    _shot(page, "1-map")


def test_lasso_selects_deletes_and_undo_restores(page, app_db):
    # A rough pentagon over the middle of the plot.
    draw_lasso(page, [(-.25, -.2), (.2, -.25), (.25, .1), (0, .25), (-.2, .15), (-.25, -.2)])
    page.mouse.up()
    _settle(page)
    count = _selected_count(page)
    assert count > 0
    _shot(page, "2-lasso-selection")

    page.get_by_label("Delete reason").fill("browser test")
    page.get_by_role("button", name="Delete", exact=True).click()
    _settle(page)
    page.get_by_text(re.compile(r"delete: [\d,]+ pairs changed")).wait_for()
    assert _deleted(app_db) == count
    (reason,) = query(app_db, "SELECT reason FROM operations WHERE kind = 'delete' ORDER BY id DESC LIMIT 1")[0]
    assert reason == "browser test"
    _shot(page, "3-deleted")

    page.get_by_role("button", name="Undo last operation").click()
    _settle(page)
    page.get_by_text(re.compile(r"undid operation \d+")).wait_for()
    assert _deleted(app_db) == 0
    _shot(page, "4-undone")


def test_keyword_search_highlights_hits(page, app_db, app_url):
    page.goto(app_url + "/search_page")
    (prompt,) = query(app_db, "SELECT prompt FROM pairs ORDER BY id LIMIT 1")[0]
    word = max(re.findall(r"[A-Za-z]+", prompt), key=len)  # a word the data surely holds
    expected = query(app_db, "SELECT count(*) FROM pairs WHERE prompt ILIKE ? OR response ILIKE ?",
                     [f"%{word}%", f"%{word}%"])[0][0]
    assert expected > 0
    page.get_by_label("Text").fill(word)
    page.get_by_label("Text").press("Enter")  # Streamlit commits a text input on Enter (or blur)
    _settle(page)
    page.get_by_role("button", name="Search", exact=True).click()
    _settle(page)
    assert _selected_count(page) == expected
    page.wait_for_selector(".js-plotly-plot")
    assert page.get_by_text(f"selected ({expected:,})").count() > 0  # the highlight trace's legend entry
    _shot(page, "5-search")


def test_export_writes_a_file(page, app_db, app_url, tmp_path):
    page.goto(app_url + "/export_page")
    out = tmp_path / "export"
    page.get_by_label("Directory").fill(str(out))
    page.get_by_label("Directory").press("Enter")
    _settle(page)
    page.get_by_role("button", name="Export", exact=True).click()
    _settle(page)
    page.get_by_text(re.compile(r"wrote [\d,]+ training pairs")).wait_for()
    kept = query(app_db, "SELECT count(*) FROM pairs_view WHERE NOT deleted")[0][0]
    lines = (out / "train.jsonl").read_text().splitlines()
    val = out / "val.jsonl"
    assert len(lines) + (len(val.read_text().splitlines()) if val.exists() else 0) <= kept
    assert lines
    _shot(page, "6-export")
