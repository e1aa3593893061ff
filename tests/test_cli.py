"""The command-line entry point: every command reachable, heavy libraries loaded only when used."""

from __future__ import annotations

import importlib
import subprocess
import sys

from cli import main


def test_lazy_command_table_matches_the_modules():
    by_module: dict[str, set[str]] = {}
    for name, module in main.LAZY_COMMANDS.items():
        by_module.setdefault(module, set()).add(name)
    for module, names in by_module.items():
        assert {c.name for c in importlib.import_module(module).COMMANDS} == names, module


def test_help_lists_every_command(curator):
    result = curator("--help")
    assert result.exit_code == 0
    for name in [*main.LAZY_COMMANDS, "ingest", "stats", "rejects", "jobs", "sql", "demo", "embed", "map", "clusters"]:
        assert f"  {name} " in result.output, name


def test_unknown_command_is_a_usage_error(curator):
    result = curator("no-such-command", ok=False)
    assert result.exit_code == 2
    assert "No such command 'no-such-command'" in result.output


def test_start_up_loads_no_model_or_api_library():
    # What `curator ingest` / `stats` / `sql` pay on every start: not the map's, training's or
    # the API client's libraries (they took 1.8 s of a 2.3 s start).
    loaded = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, cli.main; print(sorted(m for m in ('torch', 'openai', 'sklearn', "
            "'umap', 'hdbscan', 'jobs.map', 'jobs.demo', 'streamlit') if m in sys.modules))",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert loaded == "[]"
