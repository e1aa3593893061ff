"""`curator app` as a newcomer starts it: on a fresh machine with no Streamlit config, in the
background, with the default --browser. It must start headless (Streamlit's first-run e-mail
prompt used to wait on stdin and the port never answered) and serve the map's data routes."""

from __future__ import annotations

import os
import urllib.error
import urllib.request

import storage
from bench.app_driver import start_app, stop_app


def _status(url: str) -> int:
    try:
        with urllib.request.urlopen(url, timeout=10) as response:
            return response.status
    except urllib.error.HTTPError as err:
        return err.code


def test_app_starts_headless_with_no_streamlit_config(tmp_path):
    db = tmp_path / "empty.duckdb"
    storage.connect(db).close()
    home = tmp_path / "home"
    home.mkdir()
    # A HOME with no ~/.streamlit, stdin closed, and a browser command that opens nothing.
    env = {**os.environ, "HOME": str(home), "BROWSER": "true"}
    env = {k: v for k, v in env.items() if not k.startswith("STREAMLIT_")}
    log = tmp_path / "app.log"
    server, url = start_app(db, log, timeout=90, env=env, browser=True)
    try:
        assert _status(url + "/_stcore/health") == 200
        assert _status(url + "/curator/blob/0123456789abcdef0123456789abcdef") == 404
        assert _status(url + "/curator/pair/0123456789abcdef0123456789abcdef/0") == 404
        text = log.read_text(errors="replace")
        assert "Email" not in text and "127.0.0.1" in text
    finally:
        stop_app(server)


def test_app_binds_to_loopback_headless_and_sends_no_statistics(tmp_path):
    db = tmp_path / "empty.duckdb"
    storage.connect(db).close()
    server, url = start_app(db, tmp_path / "app.log", timeout=90)
    try:
        args = " ".join(open(f"/proc/{server.pid}/cmdline").read().split("\0"))
        assert "--server.address 127.0.0.1" in args and "--server.headless true" in args
        assert "--browser.gatherUsageStats false" in args
    finally:
        stop_app(server)
