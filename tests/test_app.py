"""app.py's pages rendered by Streamlit's own test harness against a real database (the
browser tests in test_browser.py drive the real server in Chromium)."""
from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def test_overview_shows_the_database(curator, tmp_path, monkeypatch):
    data = tmp_path / "x.jsonl"
    data.write_text('{"prompt": "One?", "response": "1", "source": "a"}\n{"prompt": "Two?", "response": "2", "source": "b"}\n'
                    '{"prompt": "Three?"}\n')
    curator("ingest", data)
    monkeypatch.setenv("CURATOR_DB", str(curator.db))
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    assert "No map yet" in app.info[0].value  # the Map page says how to make one
    app.switch_page("ui/jobs_page.py").run()
    assert not app.exception
    metrics = {m.label: m.value for m in app.metric}
    assert metrics == {"pairs": "2", "deleted": "0", "rejected records": "1", "exact duplicates": "0"}
    jobs, rejects = (frame.value for frame in app.dataframe)
    assert list(jobs["status"]) == ["done"]
    assert list(rejects["reason"]) == ["missing field 'response'"]


def test_no_database_says_how_to_make_one(tmp_path, monkeypatch):
    monkeypatch.setenv("CURATOR_DB", str(tmp_path / "none.duckdb"))
    app = AppTest.from_file(APP, default_timeout=60).run()
    assert not app.exception
    assert "make run" in app.info[0].value
