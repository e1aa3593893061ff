"""What `curator compare` computes from its runs' files and scores, with no database or model:
the training files without the held-out prompts, the same-size control, the table and its
gains, a paired test of two models, the chart.

A comparison trains one LoRA recipe on version A, on version B and (the control) on a random
subset of A as large as B's training file, and scores the base and each tuned model on an
evaluation set and on a split held out of B that no model trains on. The control separates
"B is better data" from "B is less data": B beating A alone could be either.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curator.errors import UserError

BASE, A, B, A_SAME_SIZE = "base", "a", "b", "a-same-size"
EVAL_SET, HELD_OUT = "eval", "heldout"  # the two sets; also the table's column prefixes
BOOTSTRAP_ROUNDS = 2000


def heldout_mask(prompt_hashes: np.ndarray, leak_hashes: np.ndarray) -> np.ndarray:
    """True for the records to train on: those whose prompt hash is not one to hold out."""
    return ~np.isin(prompt_hashes, leak_hashes)


def same_size_subset(available: int, size: int, seed: int) -> np.ndarray:
    """`size` of `available` record positions drawn without replacement by a seeded draw, in
    file order: the control's training file."""
    if size > available:
        raise UserError(
            f"version A has {available:,} training pairs, fewer than B's {size:,}: "
            "a same-size subset of A does not exist"
        )
    return np.sort(np.random.default_rng(seed).choice(available, size, replace=False))


@dataclass
class Model:
    """One row of the comparison: the base, or a model tuned on one training file."""

    key: str  # BASE, A, B, A_SAME_SIZE
    label: str  # what the table calls it
    pairs: int | None  # training examples (None: the base)
    steps: int
    tokens: int  # tokens the run processed, prompts included
    scores: dict[str, dict]  # {EVAL_SET | HELD_OUT: curator eval's summary, plus "nll" per example}


def gain(base_ppl: float, ppl: float) -> float:
    """Share of the base's perplexity the tuning removed (negative: the model got worse)."""
    return (base_ppl - ppl) / base_ppl


def table(models: list[Model]) -> list[dict]:
    """A row per model: training pairs, steps, tokens seen, and on each set the token-weighted
    response perplexity, the mean of per-example perplexities (clipped at 100, GPT4All's
    figure) and the gain over the base's token-weighted perplexity."""
    base = next(m for m in models if m.key == BASE)
    rows = []
    for model in models:
        row = {
            "model": model.label,
            "key": model.key,
            "pairs": model.pairs,
            "steps": model.steps,
            "tokens": model.tokens,
        }
        for name in (EVAL_SET, HELD_OUT):
            scores = model.scores[name]
            row[f"{name}_ppl"] = scores["ppl_tokens"]
            row[f"{name}_ppl_mean"] = scores["ppl_mean"]
            row[f"{name}_gain"] = gain(base.scores[name]["ppl_tokens"], scores["ppl_tokens"])
        rows.append(row)
    return rows


def paired_difference(nll_x: list[float], nll_y: list[float], seed: int, rounds: int = BOOTSTRAP_ROUNDS) -> dict:
    """How much x's per-example perplexity differs from y's on the same examples: the ratio of
    their geometric means minus 1 (negative: x is better), with a 95% bootstrap interval over
    the examples. An interval that holds 0 means the set cannot tell the two models apart."""
    diff = np.asarray(nll_x, dtype=np.float64) - np.asarray(nll_y, dtype=np.float64)
    if len(diff) == 0:
        raise UserError("no examples to compare")
    draws = np.random.default_rng(seed).integers(0, len(diff), size=(rounds, len(diff)))
    low, high = np.percentile(diff[draws].mean(axis=1), [2.5, 97.5])
    return {"ratio": math.expm1(diff.mean()), "low": math.expm1(low), "high": math.expm1(high), "examples": len(diff)}


# The pairs of models worth testing against each other: curation's effect, the control's, and
# what the control says about data size alone.
PAIRS = ((B, A), (B, A_SAME_SIZE), (A_SAME_SIZE, A))


def paired_tests(models: list[Model], set_names: dict[str, str], seed: int) -> list[dict]:
    """paired_difference for each of PAIRS present, on each set (set_names: {EVAL_SET |
    HELD_OUT: what to call it})."""
    by_key = {m.key: m for m in models}
    return [
        {
            "x": by_key[x].label,
            "y": by_key[y].label,
            "set": set_names[name],
            **paired_difference(by_key[x].scores[name]["nll"], by_key[y].scores[name]["nll"], seed),
        }
        for x, y in PAIRS
        if x in by_key and y in by_key
        for name in (EVAL_SET, HELD_OUT)
    ]


def verdict(test: dict) -> str:
    """One line saying what a paired test shows."""
    if test["low"] <= 0 <= test["high"]:
        outcome = "no difference this set can show"
    else:
        outcome = f"{test['x']} is {'better' if test['ratio'] < 0 else 'worse'}"
    return (
        f"{test['x']} vs {test['y']} on {test['set']}: perplexity {test['ratio']:+.1%} "
        f"(95% interval {test['low']:+.1%} .. {test['high']:+.1%}, {test['examples']} examples): {outcome}"
    )


def plot(rows: list[dict], set_names: dict[str, str], title: str, path: str | Path) -> None:
    """Bars of each model's perplexity on each set of set_names, the base's as a dashed line,
    gains over the base written on the bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(10, 4), dpi=100)
    labels = [row["model"] for row in rows]
    colours = ["#999999"] + [f"C{i}" for i in range(len(rows) - 1)]
    for ax, (name, set_title) in zip(axes, set_names.items()):
        values = [row[f"{name}_ppl"] for row in rows]
        bars = ax.bar(range(len(rows)), values, color=colours)
        ax.axhline(values[0], color="#555555", linestyle="--", linewidth=1)
        for bar, row in zip(bars[1:], rows[1:]):
            ax.annotate(
                f"{row[f'{name}_gain']:+.1%}",
                (bar.get_x() + bar.get_width() / 2, bar.get_height()),
                ha="center",
                va="bottom",
                fontsize=8,
            )
        ax.set_xticks(range(len(rows)), labels, rotation=15, ha="right", fontsize=8)
        ax.set_ylim(min(values) * 0.9, max(values) * 1.05)
        ax.set_title(set_title, fontsize=10)
        ax.set_ylabel("response perplexity (token-weighted)")
    fig.suptitle(f"{title}; on the bars: gain over the base", fontsize=10)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)
