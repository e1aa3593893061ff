"""Keep the command synopses in docs/*.md equal to the CLI's own --help.

Each docs page holds, for every command it documents, a block between two markers:

    <!-- cli: curator map -->
    ```text
    Usage: curator map [OPTIONS]
    ...
    ```
    <!-- /cli -->

The text inside is click's help for that command, rendered at a fixed width so that it does
not depend on the terminal. `--write` rewrites every marked block from the CLI; `--check`
changes nothing and exits 1, listing every block that differs from the CLI, every block that
names no command, and every command (groups and subcommands included) that has no block in
any page. tests/test_docs.py runs the check.

    .venv/bin/python scripts/cli_reference.py --write
    .venv/bin/python scripts/cli_reference.py --check
"""

from __future__ import annotations

import argparse
import re
import sys
from dataclasses import dataclass
from pathlib import Path

import click

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
WIDTH = 100  # help text width: fixed, so the blocks do not depend on the terminal
PROGRAM = "curator"  # the console script's name (cli.main.main runs cli(prog_name="curator"))

# Markers stand alone on their lines (a marker quoted inside a sentence is not one); a block's
# body holds no opening marker, so an unclosed block cannot swallow the next one.
OPEN = r"^<!-- cli: (?P<name>[^>\n]*?) -->$"
OPENING = re.compile(OPEN, re.MULTILINE)
BLOCK = re.compile(OPEN + r"\n(?P<body>(?:(?!^<!-- cli: ).)*?)^<!-- /cli -->$", re.DOTALL | re.MULTILINE)


def _import_cli() -> click.Group:
    if str(ROOT) not in sys.path:
        sys.path.insert(0, str(ROOT))
    from cli.main import cli

    return cli


def command_help() -> dict[str, str]:
    """Every command's help, by its full name ("curator", "curator map", "curator concept create"),
    groups included. Lazily loaded commands are loaded through the group, as the CLI loads them."""
    helps: dict[str, str] = {}

    def visit(command: click.Command, ctx: click.Context, name: str) -> None:
        text = command.get_help(ctx)
        helps[name] = "\n".join(line.rstrip() for line in text.splitlines())
        if isinstance(command, click.Group):
            for sub_name in command.list_commands(ctx):
                sub = command.get_command(ctx, sub_name)
                if sub is None or sub.hidden:
                    continue
                sub_ctx = click.Context(
                    sub, info_name=sub_name, parent=ctx, terminal_width=WIDTH, max_content_width=WIDTH
                )
                visit(sub, sub_ctx, f"{name} {sub_name}")

    root = _import_cli()
    visit(root, click.Context(root, info_name=PROGRAM, terminal_width=WIDTH, max_content_width=WIDTH), PROGRAM)
    return helps


def render(help_text: str) -> str:
    """A block's body: the help in a ```text fence."""
    return f"```text\n{help_text}\n```\n"


@dataclass
class Block:
    path: Path
    line: int  # 1-based line of the opening marker
    name: str
    body: str


def _line(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def blocks(path: Path) -> list[Block]:
    text = path.read_text(encoding="utf-8")
    return [Block(path, _line(text, m.start()), m.group("name").strip(), m.group("body")) for m in BLOCK.finditer(text)]


def unclosed(path: Path) -> list[str]:
    """Opening markers with no closing marker before the next opening one."""
    text = path.read_text(encoding="utf-8")
    closed = {m.start() for m in BLOCK.finditer(text)}
    return [
        f"{_shown(path)}:{_line(text, m.start())}: `<!-- cli: {m.group('name')} -->` has no `<!-- /cli -->`"
        for m in OPENING.finditer(text)
        if m.start() not in closed
    ]


def pages(docs: Path = DOCS) -> list[Path]:
    return sorted(docs.glob("*.md"))


def _shown(path: Path) -> str:
    """The path relative to the repository when it is inside it."""
    try:
        return str(path.resolve().relative_to(ROOT))
    except ValueError:
        return str(path)


def check(docs: Path = DOCS, helps: dict[str, str] | None = None) -> list[str]:
    """Problems, one line each; empty when every block matches the CLI and every command has one."""
    helps = command_help() if helps is None else helps
    problems: list[str] = []
    documented: set[str] = set()
    for path in pages(docs):
        problems += unclosed(path)
        for block in blocks(path):
            if block.name not in helps:
                problems.append(f"{_shown(path)}:{block.line}: block for `{block.name}`, which is no command")
                continue
            documented.add(block.name)
            if block.body != render(helps[block.name]):
                problems.append(
                    f"{_shown(path)}:{block.line}: block for `{block.name}` differs from `{block.name} --help`"
                )
    problems += [
        f"`{name}` has no `<!-- cli: {name} -->` block in any docs page"
        for name in sorted(helps)
        if name not in documented
    ]
    return problems


def write(docs: Path = DOCS, helps: dict[str, str] | None = None) -> list[Path]:
    """Rewrite every marked block from the CLI; returns the pages that changed. A block naming no
    command is left as it is (check reports it)."""
    helps = command_help() if helps is None else helps
    changed = []
    for path in pages(docs):
        text = path.read_text(encoding="utf-8")

        def fill(match: re.Match) -> str:
            name = match.group("name").strip()
            if name not in helps:
                return match.group(0)
            return f"<!-- cli: {name} -->\n{render(helps[name])}<!-- /cli -->"

        new = BLOCK.sub(fill, text)
        if new != text:
            path.write_text(new, encoding="utf-8")
            changed.append(path)
    return changed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    action = parser.add_mutually_exclusive_group(required=True)
    action.add_argument("--write", action="store_true", help="rewrite every marked block from the CLI")
    action.add_argument(
        "--check", action="store_true", help="exit 1 if a block differs from the CLI or a command has no block"
    )
    parser.add_argument("--docs", type=Path, default=DOCS, help="folder of markdown pages (default: docs/)")
    args = parser.parse_args(argv)
    helps = command_help()
    if args.write:
        changed = write(args.docs, helps)
        for path in changed:
            print(f"rewrote {_shown(path)}")
        print(f"{len(changed)} page(s) changed")
    problems = check(args.docs, helps)
    for problem in problems:
        print(problem, file=sys.stderr)
    if problems:
        print(
            f"{len(problems)} problem(s). `python scripts/cli_reference.py --write` rewrites the blocks "
            "that differ; a command with no block needs its two markers added by hand to the page "
            "that documents it (docs/index.md lists the pages)",
            file=sys.stderr,
        )
        return 1
    if args.check:
        print(f"docs: {len(helps)} commands, every block matches the CLI")
    return 0


if __name__ == "__main__":
    sys.exit(main())
