"""The layer rules, checked on the source: one direction of flow, visible in the folders.

    cli/, app.py, ui/  ->  jobs/ (long work)  ->  curator/ (domain)
                       ->  storage/ (the only SQL)  ->  curator/

- curator/ imports none of storage, jobs, cli, ui, nor DuckDB: pure functions over records
  and arrays;
- storage/ imports none of jobs, cli, ui;
- jobs/ imports neither cli nor ui;
- cli/ and ui/ do not import each other (`curator app` finds the web app's server through the
  ui package's location, the one exception), and a cli module imports no other cli module but
  cli.common and cli.output (what every command shares);
- only storage/ speaks SQL: nowhere else is a connection's execute, sql, fetch or register
  called.
"""

from __future__ import annotations

import ast
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("curator", "storage", "jobs", "cli", "ui")
FORBIDDEN = {
    "curator": {"storage", "jobs", "cli", "ui", "duckdb"},
    "storage": {"jobs", "cli", "ui"},
    "jobs": {"cli", "ui"},
    "cli": {"ui"},
    "ui": {"cli"},
}
SHARED_CLI = {"cli.common", "cli.output"}
ALLOWED = {("cli/app.py", "ui")}  # `curator app` locates ui/server.py
SQL_CALLS = {"execute", "executemany", "sql", "fetchall", "fetchone", "fetchnumpy", "fetchdf", "register"}


def _sources(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def _imports(path: Path) -> list[tuple[int, str]]:
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module))
    return found


def _violations(package: str) -> list[str]:
    out = []
    for path in _sources(package):
        name = str(path.relative_to(ROOT))
        for line, module in _imports(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package] and (name, top) not in ALLOWED:
                out.append(f"{name}:{line} imports {module}")
            if package == "cli" and top == "cli" and module not in SHARED_CLI:
                out.append(f"{name}:{line} imports {module} (cli modules share only cli.common and cli.output)")
    return out


@pytest.mark.parametrize("package", PACKAGES)
def test_no_import_goes_up_or_sideways(package):
    assert _violations(package) == []


@pytest.mark.parametrize("package", ["curator", "jobs", "cli", "ui"])
def test_only_storage_speaks_sql(package):
    calls = []
    for path in _sources(package):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr in SQL_CALLS:
                calls.append(f"{path.relative_to(ROOT)}:{node.lineno} .{node.func.attr}(...)")
    assert calls == []


def test_the_rules_catch_what_they_forbid(tmp_path, monkeypatch):
    """The checks above find a violation when there is one (not a test that cannot fail)."""
    bad = tmp_path / "curator"
    bad.mkdir()
    (bad / "leak.py").write_text("import duckdb\nfrom jobs.embed import embed\n\ncon.execute('SELECT 1')\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert _violations("curator") == ["curator/leak.py:1 imports duckdb", "curator/leak.py:2 imports jobs.embed"]
    with pytest.raises(AssertionError, match=r"leak.py:4 .execute"):
        test_only_storage_speaks_sql("curator")
