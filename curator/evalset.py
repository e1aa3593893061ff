"""Evaluation sets: the prompts an export must not train on.

`read_prompts(path)` takes any file `curator ingest` reads (the prompts it would ingest), a
Self-Instruct task file (`{instruction, instances: [{input, output}]}`: one prompt per
instance, instruction and input joined as for Alpaca), JSON Lines of `{prompt}` or
`{instruction, input?}` records, or a text file with one prompt per line.

The default set is the 252 Self-Instruct user-oriented tasks (the set GPT4All evaluated
on): `$CURATOR_EVAL_SET`, else a cached copy under the cache directory. Nothing is fetched
unless asked: `--eval-set self-instruct` (SELF_INSTRUCT) downloads it once, pinned to a
commit and checked against its sha256, into that cache. With no copy, there is no default
set and the caller says so.
"""

from __future__ import annotations

import hashlib
import os
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curator import formats, readers
from curator.cache import cache_dir
from curator.errors import UserError

SELF_INSTRUCT = "self-instruct"  # the --eval-set value that fetches the default set
SELF_INSTRUCT_NAME = "user_oriented_instructions.jsonl"
SELF_INSTRUCT_URL = (
    "https://raw.githubusercontent.com/yizhongw/self-instruct/"
    "0b26ccaa415992100fa32df62d41b994cf928e23/human_eval/user_oriented_instructions.jsonl"
)
SELF_INSTRUCT_SHA256 = "81d60a117db495cecedecd9193504fd07c5b5a42f6699ef6b0f9da10fc22f42e"
DOWNLOAD_TIMEOUT_S = 20


@dataclass
class EvalSet:
    path: Path
    origin: str  # --eval-set | CURATOR_EVAL_SET | cache | downloaded
    sha256: str
    prompts: list[str]


def load(path: Path, origin: str) -> EvalSet:
    prompts = read_prompts(path)
    if not prompts:
        raise UserError(f"{path}: no prompts found in the evaluation set")
    return EvalSet(path, origin, readers.file_sha256(path), prompts)


def default_set() -> tuple[EvalSet | None, str]:
    """(the default evaluation set, "") or (None, why there is none)."""
    configured = os.environ.get("CURATOR_EVAL_SET")
    if configured:
        return load(Path(configured), "CURATOR_EVAL_SET"), ""
    cached = cache_dir() / "eval" / SELF_INSTRUCT_NAME
    if cached.is_file():
        return load(cached, "cache"), ""
    return None, (
        f"no evaluation set: $CURATOR_EVAL_SET is unset and {cached} does not exist; give "
        f"--eval-set FILE, or --eval-set {SELF_INSTRUCT} to download the 252 Self-Instruct tasks once"
    )


def fetch_self_instruct() -> EvalSet:
    """The Self-Instruct tasks from the cache, downloaded into it first when missing."""
    cached = cache_dir() / "eval" / SELF_INSTRUCT_NAME
    if cached.is_file():
        return load(cached, "cache")
    _download(SELF_INSTRUCT_URL, SELF_INSTRUCT_SHA256, cached)
    return load(cached, "downloaded")


def _download(url: str, sha256: str, target: Path) -> None:
    with urllib.request.urlopen(url, timeout=DOWNLOAD_TIMEOUT_S) as response:
        data = response.read()
    if hashlib.sha256(data).hexdigest() != sha256:
        raise OSError(f"{url} did not have the expected content (sha256 {sha256[:12]}...)")
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_suffix(".partial")
    partial.write_bytes(data)
    partial.replace(target)


def read_prompts(path: Path) -> list[str]:
    """The distinct prompts of an evaluation-set file, in file order."""
    try:
        readers.file_kind(path)
    except readers.UnsupportedFile:
        texts = (line.strip() for line in path.read_text(encoding="utf-8").splitlines())
        return list(dict.fromkeys(text for text in texts if text))
    prompts: dict[str, None] = {}
    for batch in readers.read_batches(path):
        for record in batch.values:
            prompts.update(dict.fromkeys(record_prompts(record)))
    return list(prompts)


def record_prompts(record: object) -> list[str]:
    """The prompts of one record; [] for a record that holds none."""
    if not isinstance(record, dict):
        return []
    instances = record.get("instances")
    if isinstance(instances, list) and "instruction" in record:  # Self-Instruct tasks
        return [
            p
            for instance in instances
            if isinstance(instance, dict)
            for p in _alpaca_prompts(record["instruction"], instance.get("input"))
        ]
    fmt = formats.detect_format(record)
    if fmt is not None:
        try:
            return [pair.prompt for pair in formats.record_pairs(record, fmt)]
        except formats.RecordError:
            pass
    if "instruction" in record:
        return _alpaca_prompts(record["instruction"], record.get("input"))
    if isinstance(record.get("prompt"), str) and record["prompt"].strip():
        return [record["prompt"].strip()]
    return []


def _alpaca_prompts(instruction: object, given_input: object) -> list[str]:
    # The prompt ingest would make of it: Alpaca's rule (placeholder inputs mean no input),
    # applied through the format layer with a stand-in answer, which is not used.
    try:
        return [
            formats.record_pairs({"instruction": instruction, "input": given_input, "output": "-"}, "alpaca")[0].prompt
        ]
    except formats.RecordError:
        return []


def cached_vectors(prompts: list[str], model: str, encode) -> np.ndarray:
    """The eval prompts' vectors under `model`, computed once by encode(prompts) and kept in
    the cache (the same prompts and model always give the same vectors), so an export whose
    pairs all have stored vectors never loads the model."""
    key = hashlib.sha256("\n".join([model, *prompts]).encode()).hexdigest()[:24]
    path = cache_dir() / "eval" / f"vectors-{key}.npy"
    if path.is_file():
        return np.load(path)
    vectors = np.asarray(encode(prompts), dtype=np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(".partial.npy")
    np.save(partial, vectors)
    partial.replace(path)
    return vectors
