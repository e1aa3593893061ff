"""Instruction-following difficulty (IFD, Cherry LLM: Li et al. 2023, "From Quantity to Quality").

IFD = loss(response | prompt) / loss(response alone): the mean next-token loss over the
response's tokens with its prompt before it, over the same tokens after an empty prompt. Both
are rendered with the model's chat template, so the response's tokens are identical and only
the prompt differs. Near or above 1: the prompt does not help predict the answer (a varied,
specific or hard answer, or one unrelated to its prompt); far below 1: the prompt all but
dictates it (templated answers such as P3's label words, canned identity replies). Cherry LLM
keeps the high-IFD pairs; above 1 the answer fits its prompt worse than no prompt at all.

The losses are the trainer's own (curator.training.example_losses, through the eval models of
curator.evaluation), so a torch model, a `curator train` run or a GGUF file can score.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass

from curator import training


def encode_pair(
    prompt: str, response: str, tokenizer, template: str, max_length: int
) -> tuple[training.Encoded, training.Encoded]:
    """(the pair with its prompt, the response after an empty prompt), both labelled on the
    response's text tokens (no special tokens). When the prompt pushes part of the response past max_length, the
    alone-encoding is cut to the same number of response tokens, so both losses average over
    the same tokens."""
    given = training.encode(
        training.Example(
            0, [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}], prompt, response
        ),
        tokenizer,
        template,
        max_length,
    )
    alone = training.encode(
        training.Example(
            0, [{"role": "user", "content": ""}, {"role": "assistant", "content": response}], "", response
        ),
        tokenizer,
        template,
        max_length,
    )
    given, alone = _text_only(given, tokenizer), _text_only(alone, tokenizer)
    keep = _labelled(given)
    labels, seen, end = list(alone.labels), 0, len(alone.labels)
    for t in range(1, len(labels)):
        if labels[t] == training.IGNORE:
            continue
        seen += 1
        if seen > keep:
            end = t
            break
    alone = training.Encoded(alone.id, alone.input_ids[:end], labels[:end], alone.truncated or end < len(labels))
    return given, alone


def _text_only(encoded: training.Encoded, tokenizer) -> training.Encoded:
    """Special tokens unlabelled: the end-of-turn token the trainer scores, and special-token
    text inside a response (P3's answers end in a literal "<|endoftext|>"), cost 10-20 nats
    each under a small model and would swamp the response's own tokens, as in Cherry LLM,
    which scores the answer's text alone."""
    special = set(tokenizer.all_special_ids)
    labels = [training.IGNORE if label in special else label for label in encoded.labels]
    return training.Encoded(encoded.id, encoded.input_ids, labels, encoded.truncated)


def _labelled(encoded: training.Encoded) -> int:
    """Tokens scored: labelled ones after the first position (which nothing predicts)."""
    return sum(label != training.IGNORE for label in encoded.labels[1:])


@dataclass
class IfdScores:
    tokens: list[int]  # response tokens both losses average over (0: none fit)
    loss_given_prompt: list[float | None]
    loss_alone: list[float | None]
    ifd: list[float | None]


def ifd_scores(
    model, prompts: list[str], responses: list[str], template: str = "model", max_length: int = 512, done=None
) -> IfdScores:
    """IFD of each pair under `model` (curator.evaluation's TorchModel or GgufModel)."""
    tokenizer = model.tokenizer
    chat = training.chat_template(tokenizer, template)
    encoded = [encode_pair(p, r, tokenizer, chat, max_length) for p, r in zip(prompts, responses)]
    scorable = [k for k, (given, _) in enumerate(encoded) if _labelled(given)]
    n = len(scorable)
    given_loss, counts = model.losses([encoded[k][0] for k in scorable], lambda d: done and done(d))
    alone_loss, _ = model.losses([encoded[k][1] for k in scorable], lambda d: done and done(n + d))
    result = IfdScores([0] * len(encoded), [None] * len(encoded), [None] * len(encoded), [None] * len(encoded))
    for k, given, alone, count in zip(scorable, given_loss, alone_loss, counts):
        result.tokens[k], result.loss_given_prompt[k], result.loss_alone[k] = count, given, alone
        result.ifd[k] = given / alone if alone > 0 and not math.isnan(given) else None
    return result


def run_identity(model: str, template: str, max_length: int) -> str:
    """What decides an IFD run's scores: the same identity continues the same run."""
    key = json.dumps({"kind": "ifd", "model": model, "template": template, "max_length": max_length}, sort_keys=True)
    return hashlib.sha256(key.encode()).hexdigest()
