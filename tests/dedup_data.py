"""A mapped database of real pairs for the duplicate and blob tests, built once per session.

- 2,000 real Alpaca pairs (source `alpaca`): varied instructions, the "good" data;
- 5 real P3/T0 templates, 160 rows each (source `p3/TEMPLATE`): the homogeneous short-answer
  blobs GPT4All removed;
- FastChat's 500 identity conversations (source `dummy_conversation`): repeated questions;
- 40 pairs planted from real Alpaca records (source `planted`), each the near-duplicate or the
  conflicting twin of one `alpaca` pair: see `PLANTED`.

~3.3k pairs, ingested, mapped (prompt map, default model: ~40-60 s on 2 cores) and given their
quality signals (`curator signals`). Tests work on copies (`copy_to`); the vectors and the
projection are shared with the template, read-only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import orjson
import pytest

from tests.conftest import DATA, built_once, copy_to  # noqa: F401 (copy_to: for the tests)

ALPACA = 2000
P3_TEMPLATES = (
    "imdb_Reviewer_Enjoyment",
    "ag_news_classify",
    "quarel_choose_between",
    "social_i_qa_Generate_answer",
    "wiki_qa_Is_This_True_",
)
P3_ROWS = 160
IDENTITY = "dummy_conversation"

# Which Alpaca records (by index) get which planted twin. Each kind takes 10 records, chosen
# among those with a no-input instruction and a multi-sentence answer so every edit is
# meaningful: whitespace/case (an exact duplicate after normalization), light paraphrase of
# the prompt with the answer cut mid-sentence (a semantic duplicate whose original is the
# better member), and the same prompt with another record's answer (a conflict).
KINDS = ("exact", "paraphrase", "conflict")
PER_KIND = 10


def alpaca_records() -> list[dict]:
    return [r for r in json.loads((DATA / "alpaca_5000.json").read_text()) if r["output"].strip()]


def prompt_of(record: dict) -> str:
    return record["instruction"] + (f"\n\n{record['input']}" if record["input"] else "")


def planted_sources() -> dict[str, list[int]]:
    """{kind: Alpaca record indexes}, deterministic."""
    records = alpaca_records()[:ALPACA]
    eligible = [
        i
        for i, r in enumerate(records)
        if not r["input"]
        and len(r["output"].split()) >= 40
        and r["output"].count(". ") >= 2
        and len(r["instruction"].split()) >= 6
    ]
    return {kind: eligible[n * PER_KIND : (n + 1) * PER_KIND] for n, kind in enumerate(KINDS)}


def _paraphrase(prompt: str) -> str:
    # A light rewording that keeps the meaning: a polite lead-in, the verb lower-cased.
    return "Please " + prompt[0].lower() + prompt[1:]


def _cut(response: str) -> str:
    # The answer cut mid-sentence after ~85% of its words: a worse copy of the same answer.
    words = response.split(" ")
    return " ".join(words[: int(len(words) * 0.85)]).rstrip(".,;:")


def _respace(text: str) -> str:
    # Upper case and doubled spaces: the same text once normalized (lower case, one space).
    return re.sub(" ", "  ", text.upper())


def planted_rows() -> list[dict]:
    records = alpaca_records()
    rows = []
    for kind, indexes in planted_sources().items():
        for i in indexes:
            prompt, response = prompt_of(records[i]), records[i]["output"]
            if kind == "exact":
                row = {"prompt": _respace(prompt), "response": _respace(response)}
            elif kind == "paraphrase":
                row = {"prompt": _paraphrase(prompt), "response": _cut(response)}
            else:  # another real answer, from a record outside the ingested 2,000
                row = {"prompt": prompt, "response": records[ALPACA + 500 + i]["output"]}
            rows.append({**row, "source": "planted", "kind": kind, "of": prompt})
    return rows


def write_files(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    alpaca = folder / "alpaca.jsonl"
    alpaca.write_bytes(
        b"".join(
            orjson.dumps({"prompt": prompt_of(r), "response": r["output"], "source": "alpaca"}) + b"\n"
            for r in alpaca_records()[:ALPACA]
        )
    )
    p3 = folder / "p3.jsonl"
    with open(p3, "wb") as out:
        for name in P3_TEMPLATES:
            lines = (DATA / "t0_train_50k_data_per_template" / f"{name}.jsonl").read_text().splitlines()
            for line in lines[:P3_ROWS]:
                r = json.loads(line)
                out.write(
                    orjson.dumps(
                        {
                            "prompt": r["prompt"],
                            "response": r["completion"].replace("<|endoftext|>", ""),
                            "source": f"p3/{name}",
                        }
                    )
                    + b"\n"
                )
    planted = folder / "planted.jsonl"
    planted.write_bytes(
        b"".join(orjson.dumps({k: row[k] for k in ("prompt", "response", "source")}) + b"\n" for row in planted_rows())
    )
    return [alpaca, p3, DATA / "dummy_conversation.json", planted]


@pytest.fixture(scope="module")
def template(tmp_path_factory) -> Path:
    """The session's mapped database (built by whichever test module asks first); test modules
    import this fixture."""
    if not DATA.exists():
        pytest.skip("needs ../shared/data")
    return built_once(
        tmp_path_factory,
        "dedup-mapped",
        lambda folder: [["ingest", *write_files(folder / "files")], ["map"], ["signals"]],
    )
