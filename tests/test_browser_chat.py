"""The Chat page in a real `curator app` server and headless Chromium: two models answer one
prompt side by side. Uses test_browser.py's server and page fixtures over a folder holding no
database, only models (the page needs none); screenshots go to test-artifacts/browser/.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from bench.app_driver import settle
from curator import llm_server
from tests.test_browser import _shot, app_url, page, playwright_driver, pytestmark  # noqa: F401 (fixtures)


@pytest.fixture(scope="module")
def app_db(tmp_path_factory) -> Path:
    """Where the app looks for models: a tuned file beside a database that does not exist."""
    folder = tmp_path_factory.mktemp("chat")
    (folder / "runs").mkdir()
    shutil.copy(llm_server.bundled_model(), folder / "runs" / "tuned.gguf")
    return folder / "curator.duckdb"


def test_two_models_answer_side_by_side(page, app_url):
    page.goto(app_url + "/chat")
    page.get_by_test_id("stChatInputTextArea").wait_for()
    assert page.get_by_label("Compare with a second model").is_checked()  # a tuned file found: beside the base
    page.get_by_test_id("stChatInputTextArea").fill("What is the capital of France?")
    page.get_by_test_id("stChatInputTextArea").press("Enter")
    page.get_by_text(re.compile(r"\d+ tokens, [\d.]+ tokens/s")).nth(1).wait_for()  # both answers done
    settle(page)
    messages = page.get_by_test_id("stChatMessage")
    assert messages.count() == 4  # the prompt and an answer in each column
    answers = [messages.nth(i).inner_text().strip() for i in (1, 3)]
    assert all(answers) and not any(a.endswith("▌") for a in answers)
    _shot(page, "7-chat-side-by-side")
