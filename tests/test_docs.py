"""The documentation: README.md stays short, docs/*.md hold each command's current --help, and
every relative link (with its #anchor) leads somewhere."""

from __future__ import annotations

import re
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "scripts"))

import cli_reference  # noqa: E402  (lives in scripts/, added to the path above)

README = ROOT / "README.md"
DOCS = ROOT / "docs"
PAGES = [README, *sorted(DOCS.glob("*.md"))]

FENCE = re.compile(r"^```.*?^```[ \t]*$", re.DOTALL | re.MULTILINE)
CODE_SPAN = re.compile(r"`[^`]*`")
LINK = re.compile(r"\[[^\]]*\]\(\s*([^)\s]+)(?:\s+\"[^\"]*\")?\s*\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)


def prose(text: str) -> str:
    """The text outside fenced code blocks."""
    return FENCE.sub("", text)


def anchors(path: Path) -> set[str]:
    """The #fragments GitHub gives a page's headings: lower-case, punctuation dropped, spaces to
    hyphens, repeated slugs numbered."""
    seen: dict[str, int] = {}
    result = set()
    for heading in HEADING.findall(prose(path.read_text(encoding="utf-8"))):
        slug = re.sub(r"[^\w\- ]", "", heading.lower()).replace(" ", "-")
        count = seen.get(slug, 0)
        seen[slug] = count + 1
        result.add(slug if count == 0 else f"{slug}-{count}")
    return result


def relative_links(path: Path) -> list[str]:
    text = CODE_SPAN.sub("", prose(path.read_text(encoding="utf-8")))
    return [target for target in LINK.findall(text) if not re.match(r"[a-z][a-z0-9+.-]*:", target)]


def test_every_command_block_matches_the_cli():
    problems = cli_reference.check()
    assert not problems, "docs/*.md out of date with the CLI (`python scripts/cli_reference.py --write`):\n" + (
        "\n".join(problems)
    )


def test_readme_is_short():
    size = README.stat().st_size
    assert size < 20_000, f"README.md is {size:,} bytes; move detail into docs/"


def test_relative_links_point_to_existing_files_and_headings():
    broken = []
    for page in PAGES:
        for target in relative_links(page):
            file_part, _, fragment = target.partition("#")
            destination = (page.parent / file_part).resolve() if file_part else page
            where = f"{page.relative_to(ROOT)}: ({target})"
            if not destination.exists():
                broken.append(f"{where}: no such file")
            elif fragment and destination.suffix == ".md" and fragment not in anchors(destination):
                broken.append(f"{where}: no heading #{fragment} in {destination.relative_to(ROOT)}")
    assert not broken, "\n".join(broken)


def test_every_docs_page_is_listed_in_the_readme_and_the_index():
    for listing in (README, DOCS / "index.md"):
        linked = {(listing.parent / target.partition("#")[0]).resolve() for target in relative_links(listing)}
        missing = [page.name for page in sorted(DOCS.glob("*.md")) if page != listing and page not in linked]
        assert not missing, f"{listing.relative_to(ROOT)} does not link {missing}"
