"""`curator app`: the web app on this machine, bound to 127.0.0.1 unless --host says otherwise."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

import ui
from cli.common import database

APP = Path(ui.__file__).resolve().parents[1] / "app.py"


@click.command("app")
@click.option("--port", default=8501, show_default=True, type=int)
@click.option("--host", default="127.0.0.1", show_default=True,
              help="Address to bind; 0.0.0.0 exposes your data to the network.")
@click.option("--browser/--no-browser", default=True, show_default=True, help="Open a browser tab.")
@click.pass_context
def app(ctx, port, host, browser):
    """Browse the map, select, tag, delete, search, version and export in the browser."""
    env = {**os.environ, "CURATOR_DB": str(Path(database(ctx)).resolve())}
    argv = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.address", host,
            "--server.port", str(port), "--server.headless", str(not browser).lower(),
            "--browser.gatherUsageStats", "false",
            # No source watching: it is for editing the app, and it watches the whole folder
            # (inotify overflowed, burning CPU, while a benchmark wrote a 1 GB file beside it).
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--client.toolbarMode", "minimal"]
    click.echo(f"curator app: http://{host}:{port} (database {env['CURATOR_DB']}; Ctrl-C stops it)")
    os.execve(sys.executable, argv, env)  # the app replaces this process: signals reach Streamlit


COMMANDS = [app]
