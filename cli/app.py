"""`curator app`: the web app on this machine, bound to 127.0.0.1 unless --host says otherwise."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click

import ui
from cli.common import database

SERVER = Path(ui.__file__).resolve().parent / "server.py"

# Opens the browser once the server answers: Streamlit itself only opens one when it is not
# headless, and not headless it first asks for an e-mail address on a fresh machine and waits
# on stdin (the app never answered on its port under `make run` in the background).
_OPEN_BROWSER = """
import sys, time, urllib.request, webbrowser
url = sys.argv[1]
for _ in range(600):
    try:
        urllib.request.urlopen(url + "/_stcore/health", timeout=1)
        webbrowser.open(url)
        break
    except OSError:
        time.sleep(0.2)
"""


# Streamlit's own command line, run so that Ctrl-C, the way to stop the app, is no error: its
# click entry point would print "Aborted!" and exit 1 (and `make run` would report a failure).
_SERVE = """
import sys, click
from streamlit.web import cli
try:
    cli.main(sys.argv[1:], prog_name="streamlit", standalone_mode=False)
except (KeyboardInterrupt, click.exceptions.Abort):
    pass
"""


def _has_browser() -> bool:
    """Whether a browser window can open here: not on a Linux box with no display (where
    Python's webbrowser would start a text browser on a terminal that isn't there) unless
    $BROWSER names one."""
    return (
        sys.platform in ("darwin", "win32")
        or "BROWSER" in os.environ
        or bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))
    )


@click.command("app")
@click.option("--port", default=8501, show_default=True, type=int)
@click.option(
    "--host", default="127.0.0.1", show_default=True, help="Address to bind; 0.0.0.0 exposes your data to the network."
)
@click.option("--browser/--no-browser", default=True, show_default=True, help="Open a browser tab.")
@click.pass_context
def app(ctx, port, host, browser):
    """Browse the map, select, tag, delete, search, version and export in the browser."""
    env = {**os.environ, "CURATOR_DB": str(Path(database(ctx)).resolve())}
    argv = [
        sys.executable,
        "-c",
        _SERVE,
        "run",
        str(SERVER),
        "--server.address",
        host,
        "--server.port",
        str(port),
        # Always headless, never asking anything, never sending usage statistics.
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # No source watching: it is for editing the app, and it watches the whole folder
        # (inotify overflowed, burning CPU, while a benchmark wrote a 1 GB file beside it).
        "--server.fileWatcherType",
        "none",
        "--server.runOnSave",
        "false",
        "--client.toolbarMode",
        "minimal",
        # The line above says where the app is; Streamlit's banner would say it again.
        "--logger.hideWelcomeMessage",
        "true",
    ]
    url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
    click.echo(f"curator app: {url} (database {env['CURATOR_DB']}; Ctrl-C stops it)")
    if browser and _has_browser():
        subprocess.Popen(
            [sys.executable, "-c", _OPEN_BROWSER, url],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
    os.execve(sys.executable, argv, env)  # the app replaces this process: signals reach Streamlit


COMMANDS = [app]
