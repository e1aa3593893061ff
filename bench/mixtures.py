"""Real mixtures of ../shared/data with a family per pair: what the map benchmarks and tests read.

A *family* is a kind of data a curator would delete or keep as one: general instructions
(Alpaca, the AlpacaEval prompts and their 13 sets of model answers, OpenAssistant), code,
the P3 templates, Anthropic HH dialogues, GPTeacher roleplay, and FastChat's canned identity
conversations. Every pair's source names its family ("code/code_alpaca", "p3/imdb_..."), so
`family_of(source)` is the part before the slash.

`build(db, data_dir, per_family=None)` ingests the mixture with `curator ingest` (each file in
its own format, a `source` added to every record), all of it or a seeded sample of
`per_family` records a family (P3: spread evenly over its templates). The full mixture is
~86k pairs.
"""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import orjson

# (family, source, glob under the data folder)
FILES = [
    ("instructions", "alpaca", "alpaca_5000.json"),
    ("instructions", "alpaca_eval", "alpaca_eval_example/outputs.json"),
    ("instructions", "alpaca_eval:{parent}", "alpaca_eval_results/*/model_outputs.json"),
    ("instructions", "oasst", "oasst2_filtered.jsonl"),
    ("code", "code_alpaca", "code_alpaca_2k.json"),
    ("code", "codegen_instruct", "codegen-instruct.json"),
    ("code", "new_codealpaca", "new_codealpaca.json"),
    ("p3", "{stem}", "t0_train_50k_data_per_template/*.jsonl"),
    ("dialogue", "hh_harmless", "hh-rlhf_harmless-base/test.jsonl.gz"),
    ("roleplay", "gpteacher_roleplay", "roleplay-simple-deduped-roleplay-instruct.json"),
    ("identity", "fastchat_identity", "dummy_conversation.json"),
]
FAMILIES = sorted({family for family, _, _ in FILES})
DEFAULT_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


def family_of(source: str) -> str:
    return source.split("/", 1)[0]


def read_records(path: Path) -> list:
    """Every record of a JSON array file or a JSON Lines file (gzipped or not)."""
    data = path.read_bytes()
    if path.suffix == ".gz":
        import gzip

        data = gzip.decompress(data)
    if data.lstrip()[:1] == b"[":
        return orjson.loads(data)
    return [orjson.loads(line) for line in data.splitlines() if line.strip()]


def records(data_dir: Path, per_family: int | None = None, seed: int = 0) -> dict[str, list[dict]]:
    """{group name: records with their `source` set}, one group per file kind (so that each is
    ingested in its own format): everything, or `per_family` records a family."""
    rng = np.random.default_rng(seed)
    by_family: dict[str, list[tuple[str, list[dict]]]] = {}
    for family, source, pattern in FILES:
        paths = sorted(data_dir.glob(pattern))
        if not paths:
            raise FileNotFoundError(f"{data_dir / pattern}: no such file (the shared data folder?)")
        for path in paths:
            name = source.format(stem=path.stem, parent=path.parent.name)
            rows = [dict(r, source=f"{family}/{name}") for r in read_records(path) if isinstance(r, dict)]
            by_family.setdefault(family, []).append((f"{family}-{path.stem}-{path.parent.name}", rows))
    groups: dict[str, list[dict]] = {}
    for family, files in by_family.items():
        if per_family is None:
            chosen = files
        else:
            # An even share of each file (P3: a few records from each of many templates).
            share = max(1, per_family // len(files))
            chosen = []
            for name, rows in files:
                take = min(len(rows), share)
                chosen.append((name, [rows[i] for i in sorted(rng.choice(len(rows), take, replace=False))]))
        for name, rows in chosen:
            kind = "p3" if family == "p3" else name
            groups.setdefault(kind, []).extend(rows)
    return groups


def build(db: Path, data_dir: Path, per_family: int | None = None, seed: int = 0) -> None:
    """Ingest the mixture into `db` with the `curator` next to this Python."""
    exe = Path(sys.executable).with_name("curator")
    with tempfile.TemporaryDirectory() as tmp:
        paths = []
        for name, rows in records(data_dir, per_family, seed).items():
            path = Path(tmp) / f"{name}.jsonl"
            path.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
            paths.append(str(path))
        subprocess.run([str(exe), "--db", str(db), "ingest", *paths], check=True, stdout=subprocess.DEVNULL)


def alpaca_split(data_dir: Path = DEFAULT_DATA) -> tuple[list[dict], list[dict]]:
    """96 short Alpaca pairs to train on; 16 others, with answers of 250+ characters, to measure
    (the short LoRA run that the quantize tests and benchmark measure files against)."""
    records = [
        r
        for r in json.loads((data_dir / "alpaca_5000.json").read_text())
        if r["output"].strip() and r["output"] != "<nooutput>"
    ]
    size = [len(r["instruction"]) + len(r["input"]) + len(r["output"]) for r in records]
    train = [r for r, n in zip(records, size) if n < 400][:96]
    val = [r for r, n in zip(records[2000:], size[2000:]) if len(r["output"]) >= 250 and n < 600][:16]
    return train, val
