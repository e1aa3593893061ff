"""How homogeneous and how harmful a group of pairs (a cluster or a source) looks.

GPT4All's authors found their worst data by eye on the Atlas map: whole blobs of near-identical
prompts with one-word answers (P3), repeated identity questions, refusals. These measures put
numbers on what they saw, per group:

- `similarity`: mean pairwise cosine of the group's vectors (of a sample of them), computed as
  (|sum v|^2 - sum |v|^2) / (n (n - 1)) for unit vectors: O(n d), no n x n matrix;
- `length_spread`: spread of response lengths in words, as the quartile coefficient of
  dispersion (q3 - q1) / (q3 + q1): answers of one size (labels, "Yes"/"No") have ~0. Not the
  coefficient of variation: a few long answers in a blob of one-word ones blow the CV up
  (measured on a P3 cluster with 19 stray Alpaca pairs: CV 2.17, quartile spread 0);
- `response_distinct` and `prompt_distinct`: distinct word 1- and 2-grams / all of them, over a
  sample of SAMPLE responses or prompts: repeated answers and templated prompts recycle words;
- `prompt_phrase`, `prompt_phrase_share`: the commonest word 4-gram of the prompts and the
  share of prompts containing it (a template's fixed wording: "did the reviewer enjoy the");
- shares of short, refusal, truncated and malformed responses (the signals).

`score` maps each measure to a term in [0, 1] (0: looks like varied, healthy data; 1: looks
like a blob; the ramps in `terms`), combines them with WEIGHTS into one number in [0, 1],
higher = worse, and says in words which terms made it high. Groups under FULL_SIZE members
have their score scaled down in proportion: a handful of pairs is not a blob.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np

from curator.signals import blob_flags

SAMPLE = 200  # texts per group for the n-gram measures (the same for every group: comparable)
VECTOR_SAMPLE = 2000  # vectors per group for the mean similarity
PHRASE_WORDS = 4
FULL_SIZE = 10  # members from which a group's score counts in full
WEIGHTS = {"similarity": 0.25, "lengths": 0.15, "responses": 0.2, "prompts": 0.15, "signals": 0.25}
# A term at least this high is given as a reason (a tenth of refusals is already worth saying).
NOTABLE = {"similarity": 0.5, "lengths": 0.5, "responses": 0.5, "prompts": 0.5, "signals": 0.1}

_WORD = re.compile(r"\w+")


@dataclass
class GroupMeasures:
    size: int
    similarity: float | None
    length_spread: float
    response_distinct: float
    prompt_distinct: float
    prompt_phrase: str | None
    prompt_phrase_share: float
    shares: dict[str, float] = field(default_factory=dict)  # signal -> share of the group


def mean_similarity(vectors: np.ndarray) -> float | None:
    """Mean cosine over all pairs of distinct rows of unit vectors; None under two rows."""
    n = len(vectors)
    if n < 2:
        return None
    vectors = np.asarray(vectors, dtype=np.float64)
    total = vectors.sum(axis=0)
    return float((total @ total - np.einsum("ij,ij->", vectors, vectors)) / (n * (n - 1)))


def words(text: str) -> list[str]:
    return _WORD.findall(text.lower())


def distinct_ngram_ratio(texts: Sequence[str], longest: int = 2) -> float:
    """Distinct word n-grams (n = 1..longest) over all of them, across the texts; 1.0 with none."""
    seen: set[tuple[str, ...]] = set()
    total = 0
    for text in texts:
        tokens = words(text)
        for n in range(1, longest + 1):
            grams = [tuple(tokens[k : k + n]) for k in range(len(tokens) - n + 1)]
            total += len(grams)
            seen.update(grams)
    return len(seen) / total if total else 1.0


def common_phrase(texts: Sequence[str], n: int = PHRASE_WORDS) -> tuple[str | None, float]:
    """The word n-gram found in the most texts (each text counted once) and the share of texts
    with it. A text shorter than n words counts as one phrase of its own words."""
    counts: Counter[tuple[str, ...]] = Counter()
    for text in texts:
        tokens = words(text)
        width = min(n, len(tokens))
        counts.update({tuple(tokens[k : k + width]) for k in range(len(tokens) - width + 1)} if width else ())
    if not counts:
        return None, 0.0
    phrase, found = min(counts.items(), key=lambda item: (-item[1], item[0]))
    return " ".join(phrase), found / len(texts)


def quartile_spread(q1: float, q3: float) -> float:
    return (q3 - q1) / (q3 + q1) if q3 + q1 > 0 else 0.0


def measure(
    size: int,
    vectors: np.ndarray,
    prompts: Sequence[str],
    responses: Sequence[str],
    length_quartiles: tuple[float, float],
    shares: dict[str, float],
) -> GroupMeasures:
    """The measures of one group from its size, sampled vectors and texts, and its counts."""
    phrase, share = common_phrase(prompts)
    return GroupMeasures(
        size,
        mean_similarity(vectors),
        quartile_spread(*length_quartiles),
        distinct_ngram_ratio(responses),
        distinct_ngram_ratio(prompts),
        phrase,
        share,
        shares,
    )


def terms(m: GroupMeasures) -> dict[str, float]:
    """Each measure as a term in [0, 1], 1 = blob-like. The ramps' ends were read off real data
    (Alpaca clusters vs P3 templates and FastChat's identity questions on a MiniLM prompt map):
    mean similarity 0.2 (varied instructions) to 0.8 (one repeated question); length spread 0.5
    (free-form answers) to 0 (one size); 50% distinct n-grams (varied answers) to 0 (one answer
    repeated); prompts: the share of them with one common phrase, or their distinct n-gram ratio
    from 60% down to 0; signals: the largest share among short, refusal, truncated, malformed."""
    return {
        "similarity": _ramp(m.similarity if m.similarity is not None else 0.0, 0.2, 0.8),
        "lengths": 1 - _ramp(m.length_spread, 0.0, 0.5),
        "responses": 1 - _ramp(m.response_distinct, 0.0, 0.5),
        "prompts": max(m.prompt_phrase_share, 1 - _ramp(m.prompt_distinct, 0.0, 0.6)),
        "signals": max((m.shares.get(name, 0.0) for name in blob_flags()), default=0.0),
    }


def score(m: GroupMeasures) -> tuple[float, list[str]]:
    """(score in [0, 1], higher = worse; the reasons, strongest first)."""
    parts = terms(m)
    total = sum(WEIGHTS[name] * value for name, value in parts.items()) * min(1.0, m.size / FULL_SIZE)
    notable = sorted(
        (name for name, value in parts.items() if value >= NOTABLE[name]), key=lambda name: -WEIGHTS[name] * parts[name]
    )
    return round(total, 4), [reason for name in notable for reason in _reasons(m, name)]


def _reasons(m: GroupMeasures, term: str) -> list[str]:
    if term == "similarity":
        return [f"mean similarity {m.similarity:.2f}"]
    if term == "lengths":
        return [f"response lengths alike (spread {m.length_spread:.2f})"]
    if term == "responses":
        return [f"responses repeat ({m.response_distinct:.0%} distinct n-grams)"]
    if term == "prompts":
        if m.prompt_phrase_share >= 1 - _ramp(m.prompt_distinct, 0.0, 0.6):
            return [f"{m.prompt_phrase_share:.0%} of prompts share \u201c{m.prompt_phrase}\u201d"]
        return [f"prompts repeat ({m.prompt_distinct:.0%} distinct n-grams)"]
    return [f"{m.shares[name]:.0%} {name}" for name in blob_flags() if m.shares.get(name, 0.0) >= NOTABLE["signals"]]


def _ramp(value: float, low: float, high: float) -> float:
    """0 at or below low, 1 at or above high, linear between."""
    return min(1.0, max(0.0, (value - low) / (high - low)))
