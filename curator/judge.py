"""An LLM judge's rating of a pair, the pure part: the rubric, the request, reading the verdict.

No I/O here. jobs/judge.py sends the requests (through jobs/request_pool.py) and stores the
verdicts; these functions decide what is asked and what counts as an answer:

- the rubric (`DEFAULT_RUBRIC`, after AlpaGasus: rate the response's accuracy and helpfulness
  to the instruction from 1 to 5), a template whose `{prompt}` and `{response}` are replaced
  by the pair's text (`request_messages`);
- the verdict (`parse_verdict`): a `Score: N` line and a `Reason: ...` line, read through the
  markdown and wording small models add; anything without a whole score from 1 to 5 is a
  MalformedAnswer, retried like a malformed body;
- the run's identity (`run_identity`): what decides the scores.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass

from curator.distill import MalformedAnswer
from curator.errors import UserError

PROMPT_PLACEHOLDER, RESPONSE_PLACEHOLDER = "{prompt}", "{response}"
MIN_SCORE, MAX_SCORE = 1, 5
MAX_REASON_CHARS = 500

DEFAULT_RUBRIC = """\
You are a careful, impartial judge of training data for an AI assistant. Below is an
instruction given to an assistant and the response it gave.

### Instruction:
{prompt}

### Response:
{response}

Rate the response on a scale of 1 to 5 for how accurate and helpful it is as an answer to
the instruction:
5 = fully correct, complete and helpful; an ideal answer.
4 = correct and helpful, with minor omissions or flaws.
3 = partly correct or partly helpful; noticeable errors or gaps.
2 = mostly wrong, off-topic, evasive or unhelpful.
1 = wrong, harmful, a refusal without reason, or not an answer at all.

Answer in exactly two lines and nothing else:
Score: <a whole number from 1 to 5>
Reason: <one sentence explaining the score>
"""


@dataclass(frozen=True)
class PairText:
    """One pair to judge."""

    pair_id: int
    prompt: str
    response: str


@dataclass(frozen=True)
class Verdict:
    score: int  # MIN_SCORE..MAX_SCORE
    reason: str | None  # one line; None when the judge gave a score alone


def check_rubric(rubric: str) -> None:
    """ValueError unless the rubric names both texts it is to be filled with."""
    missing = [p for p in (PROMPT_PLACEHOLDER, RESPONSE_PLACEHOLDER) if p not in rubric]
    if missing:
        raise UserError(f"the rubric must contain {' and '.join(missing)} (replaced by the pair's text)")


_PLACEHOLDER = re.compile(re.escape(PROMPT_PLACEHOLDER) + "|" + re.escape(RESPONSE_PLACEHOLDER))


def request_messages(rubric: str, pair: PairText) -> list[dict]:
    """The chat messages sent for a pair: the rubric, its placeholders filled in one pass (a
    pair whose own text contains `{response}` is not filled twice), as one user message."""
    texts = {PROMPT_PLACEHOLDER: pair.prompt, RESPONSE_PLACEHOLDER: pair.response}
    return [{"role": "user", "content": _PLACEHOLDER.sub(lambda m: texts[m.group(0)], rubric)}]


# A label line: markdown around it ("**Score:** 4", "## Score: 4", "- Score = 4") is skipped.
_MARKUP = r"[\s*_#>`~\-]*"
_SCORE_LINE = re.compile(rf"^{_MARKUP}(?:score|rating)\b{_MARKUP}\s*[:=]?{_MARKUP}(.*)$", re.IGNORECASE)
# Small models put it in a sentence instead: "The score is 4. The response ...".
_SCORE_PHRASE = re.compile(r"\b(?:score|rating)\s+(?:is|of|would be)\s*[:=]?\s*(.*)$", re.IGNORECASE)
_REASON_LINE = re.compile(
    rf"^{_MARKUP}(?:reason|explanation|justification)\b{_MARKUP}\s*[:=]{_MARKUP}(.*)$", re.IGNORECASE
)
_NUMBER = re.compile(r"^[\s*_`\[(]*(-?\d+(?:\.\d+)?)[\s*_`\])]*(?:(?:/|out of)\s*(\d+))?")


def parse_verdict(text: str) -> Verdict:
    """A judge's answer -> Verdict; MalformedAnswer when it holds no score from 1 to 5.

    The score is on the first line labelled `Score:` (or `Rating:`) that holds one, else in a
    sentence ("the score is 4"), else, as AlpaGasus's judge answers, on a first line that is
    a number alone. "4/5" and "4 out of 5" are read; another scale ("8/10"), a fraction
    ("3.5") or a number outside 1..5 is rejected, not rescaled: the judge did not follow the
    rubric. The reason is the line labelled `Reason:`, else what follows the score on its
    line, else the next line; cut to one line.
    """
    lines = [line.strip() for line in text.strip().splitlines()]
    found = [(i, m.group(1)) for i, line in enumerate(lines) if (m := _SCORE_LINE.match(line))]
    found += [(i, m.group(1)) for i, line in enumerate(lines) if (m := _SCORE_PHRASE.search(line))]
    if not found and lines and _NUMBER.fullmatch(lines[0].strip("*_` ")):
        found = [(0, lines[0])]
    if not found:
        raise MalformedAnswer(f"no 'Score: N' line in the verdict: {_excerpt(text)}")
    first_error = None
    for index, rest in found:  # the first that holds a usable score ("Scores vary..." does not)
        try:
            score, after = _score(rest)
        except MalformedAnswer as err:
            first_error = first_error or err
            continue
        return Verdict(score, _reason(lines, index, after))
    raise first_error


def _score(text: str) -> tuple[int, str]:
    """(score, the text after it) at the start of text."""
    number = _NUMBER.match(text)
    if number is None:
        raise MalformedAnswer(f"the score is not a number: {_excerpt(text)}")
    value, scale = number.group(1), number.group(2)
    if scale is not None and int(scale) != MAX_SCORE:
        raise MalformedAnswer(f"the score {value}/{scale} is not on the 1-{MAX_SCORE} scale")
    if "." in value and float(value) != int(float(value)):
        raise MalformedAnswer(f"the score {value} is not a whole number")
    score = int(float(value))
    if not MIN_SCORE <= score <= MAX_SCORE:
        raise MalformedAnswer(f"the score {score} is outside {MIN_SCORE}-{MAX_SCORE}")
    return score, text[number.end() :]


_NOT_A_REASON = "*_`#.,;:-– "


def _reason(lines: list[str], score_index: int, after_score: str) -> str | None:
    labelled = [(i, m.group(1).strip()) for i, line in enumerate(lines) if (m := _REASON_LINE.match(line))]
    if labelled:
        index, text = labelled[0]
        # "Reason:" alone on its line: the reason is the next line that says something.
        candidates = [text] if text else lines[index + 1 :]
    else:
        candidates = [after_score, *lines[score_index + 1 :]]
    reason = next(
        (line.lstrip(_NOT_A_REASON).rstrip("*_`# ") for line in candidates if line.strip(_NOT_A_REASON)), None
    )
    return reason[:MAX_REASON_CHARS] if reason else None


def _excerpt(text: str, limit: int = 120) -> str:
    flat = " ".join(text.split())
    return repr(flat if len(flat) <= limit else flat[:limit] + "...")


def run_identity(model: str, rubric: str, max_tokens: int, temperature: float | None) -> str:
    """quality_runs.identity of a judge run: what decides the scores. The same command
    continues the same run; another model, rubric or setting is another run (pairs_view
    shows the latest)."""
    key = json.dumps(
        {"kind": "judge", "model": model, "rubric": rubric, "max_tokens": max_tokens, "temperature": temperature},
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()


def histogram(scores: dict[int, int]) -> dict[int, int]:
    """Every score from 1 to 5 with its count (0 where none)."""
    return {score: scores.get(score, 0) for score in range(MIN_SCORE, MAX_SCORE + 1)}


def mean_score(histogram: dict[int, int]) -> float | None:
    total = sum(histogram.values())
    return sum(score * n for score, n in histogram.items()) / total if total else None
