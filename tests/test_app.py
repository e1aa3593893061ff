"""app.py's pages rendered by Streamlit's own test harness against a real database (the
browser tests in test_browser.py drive the real server in Chromium)."""

from __future__ import annotations

from pathlib import Path

from streamlit.testing.v1 import AppTest

APP = str(Path(__file__).resolve().parents[1] / "app.py")


def _app_on(curator, monkeypatch, lines: str) -> AppTest:
    """The app, run once, on a database holding these JSONL lines."""
    data = curator.db.with_name("x.jsonl")
    data.write_text(lines)
    curator("ingest", data)
    monkeypatch.setenv("CURATOR_DB", str(curator.db))
    return AppTest.from_file(APP, default_timeout=60).run()


def test_overview_shows_the_database(curator, monkeypatch):
    app = _app_on(
        curator,
        monkeypatch,
        '{"prompt": "One?", "response": "1", "source": "a"}\n'
        '{"prompt": "Two?", "response": "2", "source": "b"}\n{"prompt": "Three?"}\n',
    )
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


def test_jobs_page_starts_a_job_in_a_child_process_and_shows_its_end(curator, monkeypatch):
    app = _app_on(
        curator,
        monkeypatch,
        '{"prompt": "Tell me a joke about cats.", "response": "I\'m sorry, but as an '
        'AI language model I cannot do that."}\n'
        '{"prompt": "Capital of France?", "response": "Paris."}\n',
    )
    app.switch_page("ui/jobs_page.py").run()
    app.selectbox[0].select("signals")
    app.button[0].click().run()  # the form's Start button
    assert not app.exception
    from ui import background

    child = background.get("job:signals")
    assert child.args == ["signals"]
    assert child.process.wait(timeout=120) == 0
    app.run()
    assert any("`curator signals` finished" in s.value for s in app.success), [s.value for s in app.success]
    refusal = curator.json("sql", "SELECT prompt, refusal FROM pairs_view ORDER BY prompt")
    assert [row["refusal"] for row in refusal] == [False, True]
    assert (curator.db.parent / "logs").is_dir()
