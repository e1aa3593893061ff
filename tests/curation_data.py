"""A mapped database of real pairs, built once per test session for the curation tests.

The first 1,200 records of Code Alpaca (varied coding pairs) and FastChat's 500 identity
conversations (a homogeneous blob of "Are you GPT-2?" / "Goodbye" questions), ingested and
mapped with the default model (~40 s of embedding and UMAP on 2 cores). Tests work on copies.
"""

from __future__ import annotations

import json
from pathlib import Path

from tests.conftest import DATA, built_once, copy_to  # noqa: F401 (copy_to: for the tests)

CODE, IDENTITY = "code_alpaca", "dummy_conversation"
CODE_RECORDS = 1200


def source_files(tmp_path_factory) -> list[Path]:
    """The two input files: a Code Alpaca excerpt written to the session's temp folder (never to
    the repository), and the identity set as shipped. The same files give the same pair ids."""
    folder = tmp_path_factory.getbasetemp() / "curation-files"
    code = folder / f"{CODE}.json"
    if not code.exists():
        folder.mkdir(exist_ok=True)
        records = json.loads((DATA / "code_alpaca_2k.json").read_text(encoding="utf-8"))[:CODE_RECORDS]
        code.write_text(json.dumps(records), encoding="utf-8")
    return [code, DATA / f"{IDENTITY}.json"]


def mapped_template(tmp_path_factory) -> Path:
    """The session's mapped database (built by whichever test module asks first)."""
    return built_once(
        tmp_path_factory, "curation-mapped", lambda _: [["ingest", *source_files(tmp_path_factory)], ["map"]]
    )
