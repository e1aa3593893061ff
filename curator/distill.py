"""Distillation, the pure part: what to ask, how to read the answer, when to retry, what it costs.

No I/O here. jobs/distill.py sends the requests (the `openai` client) and keeps every
prompt's state in the database; these functions decide everything else:

- prompts of a record (`record_prompts`): read by ingest's own parsers; flat records and
  JSON strings ask their prompt (with or without an answer), conversations their last user
  turn with the turns before it;
- the request (`request_messages`) and the answer (`parse_answer`, which rejects malformed
  bodies so they are retried);
- the retry policy (`classify`, `RetryPolicy.delay`, `retry_after_seconds`,
  `shrunk_max_tokens`);
- prices (`DEFAULT_PRICES`, `price_usage`) and GPT4All-J's prompt templates (`fill_template`).
"""

from __future__ import annotations

import email.utils
import hashlib
import itertools
import json
import math
import random
import re
import time
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

from curator import formats
from curator.errors import UserError

# --- prompts -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Prompt:
    """One prompt to answer: where it came from, its text, and the turns before it."""

    line: int  # as pairs.line: 1-based line or record index (or a pair id)
    pair_index: int  # position among the prompts of one record
    prompt: str
    context: list[dict] | None  # [{role, content}] up to and including the prompt, for conversations


# Records are read by the parser ingest uses, given a placeholder answer where they have none:
# flat records without their answer key, and every conversation, so that a conversation is
# asked at its last user turn (a final answer it already has is dropped with the placeholder).
def _with_placeholder_answer(record: dict, fmt: str) -> dict | None:
    placeholder = "-"
    if fmt in ("gpt4all", "dolly") and "response" not in record and "completion" not in record:
        return {**record, "response": placeholder}
    if fmt == "alpaca" and "output" not in record and "response" not in record:
        return {**record, "output": placeholder}
    if fmt == "sharegpt" and isinstance(record.get("conversations"), list):
        turns = record["conversations"]
        last = turns[-1] if turns and isinstance(turns[-1], dict) else {}
        spelled = "role" in last and "from" not in last  # some exports spell turns {role, content}
        answer = {"role": "assistant", "content": placeholder} if spelled else {"from": "gpt", "value": placeholder}
        return {**record, "conversations": [*turns, answer]}
    if fmt == "openai" and isinstance(record.get("messages"), list):
        return {**record, "messages": [*record["messages"], {"role": "assistant", "content": placeholder}]}
    if fmt == "hh" and isinstance(record.get("chosen"), str):
        return {**record, "chosen": f"{record['chosen'].rstrip()}\n\nAssistant: {placeholder}"}
    return None


def _prompt_only_format(record: dict) -> str | None:
    """Formats that need an answer to be recognised, recognised by their prompt key alone."""
    if "instruction" in record:
        return "alpaca"
    if "prompt" in record and not isinstance(record["prompt"], dict):
        return "gpt4all"
    return None


def record_prompts(record: object, prompt_field: str | None = None) -> list[tuple[str, list[dict] | None]]:
    """(prompt, context) for each prompt a parsed record asks; RecordError when it asks none.

    - a JSON string is a prompt;
    - prompt_field: any flat object, that key's text;
    - otherwise the record's format (formats.detect_format, or a bare `instruction` or
      `prompt`) and ingest's own rules. Flat records ask their prompt. Conversations
      (sharegpt, openai, hh) ask their last user turn, with every turn before it as context;
      OpenAssistant trees ask the prompt of each of ingest's pairs.
    """
    if isinstance(record, str):
        text = record.strip()
        if len(text) <= 1:
            raise formats.RecordError("prompt is empty or a single character")
        return [(text, None)]
    if not isinstance(record, dict):
        raise formats.RecordError("record is neither a JSON object nor a string")
    if prompt_field is not None:
        # The flat-record reader with the prompt field read twice: only its prompt is used.
        (pair,) = formats.record_pairs(record, "gpt4all", prompt_field=prompt_field, response_field=prompt_field)
        return [(pair.prompt, None)]
    fmt = formats.detect_format(record) or _prompt_only_format(record)
    if fmt is None:
        keys = ", ".join(sorted(map(str, record))[:8])
        raise formats.RecordError(f"no prompt in this record (keys: {keys}); use --prompt-field")
    pairs = formats.record_pairs(_with_placeholder_answer(record, fmt) or record, fmt)
    return [(pair.prompt, pair.messages[:-1] if pair.messages else None) for pair in pairs]


def request_messages(prompt: str, context: list[dict] | None, system: str | None) -> list[dict]:
    """The chat messages sent for a prompt: its conversation up to it (a trailing answer, as
    pairs' messages have, is dropped), else the prompt alone; `system` first unless the
    conversation has its own system message."""
    turns = list(context) if context else [{"role": "user", "content": prompt}]
    if turns and turns[-1]["role"] == "assistant":
        turns.pop()
    if system and not any(turn["role"] == "system" for turn in turns):
        turns.insert(0, {"role": "system", "content": system})
    return turns


def stored_messages(sent: list[dict], response: str) -> list[dict] | None:
    """pairs.messages for an answer, by ingest's multi-turn rule: the whole conversation when it
    has more than one user turn or a system message, else None."""
    users = sum(turn["role"] == "user" for turn in sent)
    if users > 1 or any(turn["role"] == "system" for turn in sent):
        return [*sent, {"role": "assistant", "content": response}]
    return None


# --- answers -------------------------------------------------------------------------------


class MalformedAnswer(ValueError):
    """A 2xx body that is not a usable chat completion: retried like a server error."""


@dataclass(frozen=True)
class Answer:
    response: str
    finish_reason: str | None  # "stop", "length" (cut at max_tokens), ...
    model: str  # the model the server says answered
    prompt_tokens: int | None
    completion_tokens: int | None


def parse_answer(body: bytes, requested_model: str) -> Answer:
    """A chat completion body -> Answer; MalformedAnswer for anything unusable (not JSON, no
    choices, no text, an empty answer)."""
    try:
        data = json.loads(body)
    except ValueError as err:
        raise MalformedAnswer(f"body is not JSON ({err})") from None
    try:
        choice = data["choices"][0]
        content = choice["message"]["content"]
    except (KeyError, IndexError, TypeError):
        raise MalformedAnswer("body has no choices[0].message.content") from None
    if not isinstance(content, str):
        raise MalformedAnswer(f"message content is {type(content).__name__}, not text")
    response = content.strip()
    if not response:
        raise MalformedAnswer("the answer is empty")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    model = data.get("model")
    return Answer(
        response,
        choice.get("finish_reason"),
        model if isinstance(model, str) and model else requested_model,
        _count(usage.get("prompt_tokens")),
        _count(usage.get("completion_tokens")),
    )


def _count(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


# --- retries -------------------------------------------------------------------------------

RETRY, SHRINK, GIVE_UP, ABORT = "retry", "shrink", "give up", "abort"

_CONTEXT_ERROR = re.compile(
    r"context[ _-]?(length|size|window)|maximum context|too many tokens|"
    r"exceeds? the (available )?context",
    re.IGNORECASE,
)


def classify(status: int | None, message: str = "", code: str | None = None) -> str:
    """What to do after a failed request.

    status None (timeout, dropped connection, malformed body), 408, 409, 429 and 5xx: RETRY
    with backoff. A context-length error: SHRINK max_tokens and retry. 401, 403, 404 (bad
    key, no access, unknown model) and 429 insufficient_quota: ABORT the run, as every prompt
    would fail alike. Any other 4xx: GIVE_UP on this prompt (record the error, move on).
    """
    if status is None:
        return RETRY
    if status == 429 and code == "insufficient_quota":
        return ABORT
    if status in (408, 409, 429) or status >= 500:
        return RETRY
    if code in ("context_length_exceeded", "exceed_context_size_error") or _CONTEXT_ERROR.search(message):
        return SHRINK
    if status in (401, 403, 404):
        return ABORT
    return GIVE_UP


MAX_RETRY_AFTER = 600.0  # seconds: a longer Retry-After is waited this long, then retried


@dataclass(frozen=True)
class RetryPolicy:
    max_tries: int = 6  # requests per prompt before its error is recorded
    base_delay: float = 1.0  # seconds before the 2nd try; doubles each time...
    max_delay: float = 60.0  # ...up to this

    def delay(self, tries: int, retry_after: float | None, rng: random.Random) -> float:
        """Seconds to wait after `tries` failed requests. Retry-After, when the server sent
        one, is honoured (plus up to 10% jitter, so waiting workers do not return at once);
        else exponential backoff with jitter: uniform in [half, all] of base * 2^(tries-1)."""
        if retry_after is not None:
            wait = min(max(retry_after, 0.0), MAX_RETRY_AFTER)
            return wait * (1 + 0.1 * rng.random())
        ceiling = min(self.max_delay, self.base_delay * 2 ** (tries - 1))
        return rng.uniform(ceiling / 2, ceiling)


def retry_after_seconds(headers: dict[str, str], now: float | None = None) -> float | None:
    """Seconds a response asks to wait: `retry-after-ms`, else `Retry-After` as seconds or as
    an HTTP date. Header names are matched case-insensitively."""
    lowered = {k.lower(): v for k, v in headers.items()}
    try:
        if "retry-after-ms" in lowered:
            return float(lowered["retry-after-ms"]) / 1000
        value = lowered.get("retry-after")
        if value is None:
            return None
        try:
            return float(value)
        except ValueError:
            moment = email.utils.parsedate_to_datetime(value)
            return max(0.0, moment.timestamp() - (time.time() if now is None else now))
    except (ValueError, TypeError):
        return None


_OPENAI_LIMITS = re.compile(r"maximum context length is (\d+) tokens.*?(\d+) in the messages", re.S)
MIN_MAX_TOKENS = 16  # below this an answer is not worth asking for: give up instead


def shrunk_max_tokens(max_tokens: int, message: str, error: dict | None = None) -> int | None:
    """A smaller max_tokens after a context-length error, or None when none can fit.

    From the numbers the error gives (OpenAI's message "maximum context length is C tokens ...
    P in the messages", llama.cpp's n_ctx and n_prompt_tokens fields): C - P. Without
    numbers: half of max_tokens.
    """
    error = error or {}
    limit, prompt = error.get("n_ctx"), error.get("n_prompt_tokens")
    found = _OPENAI_LIMITS.search(message)
    if found and not (isinstance(limit, int) and isinstance(prompt, int)):
        limit, prompt = int(found.group(1)), int(found.group(2))
    if isinstance(limit, int) and isinstance(prompt, int):
        fitted = limit - prompt
    else:
        fitted = max_tokens // 2
    fitted = min(fitted, max_tokens - 1)
    return fitted if fitted >= MIN_MAX_TOKENS else None


_SECRET = re.compile(r"\b(sk-[A-Za-z0-9_*\-]{6,}|Bearer\s+\S+)")


def redact(text: str, secret: str | None) -> str:
    """text without the API key: an error message may quote it (OpenAI's 401 does, masked)."""
    if secret:
        text = text.replace(secret, "***")
    return _SECRET.sub("***", text)


# --- where requests go ---------------------------------------------------------------------

LOOPBACK_HOSTS = {"localhost", "127.0.0.1", "::1"}


def is_loopback(base_url: str | None) -> bool:
    """A server on this machine (localhost, 127.0.0.0/8, ::1): no key needed, no cost."""
    if not base_url:
        return False
    host = (urlsplit(base_url).hostname or "").lower()
    return host in LOOPBACK_HOSTS or host.startswith("127.")


def public_url(base_url: str | None) -> str | None:
    """The base URL as it may be stored: without user:password, query or fragment."""
    if not base_url:
        return None
    parts = urlsplit(base_url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def run_identity(prompts_key: str, model: str, system: str | None, max_tokens: int, temperature: float | None) -> str:
    """The files.sha256 of a distill run: what decides the answers (the prompts, by content or
    source name, the model and the generation settings). The same command resumes the same
    run; another model or setting is another run, whose pairs get other ids."""
    key = json.dumps(
        {
            "kind": "distill",
            "prompts": prompts_key,
            "model": model,
            "system": system,
            "max_tokens": max_tokens,
            "temperature": temperature,
        },
        sort_keys=True,
    )
    return hashlib.sha256(key.encode()).hexdigest()


# --- cost ----------------------------------------------------------------------------------

# USD per 1M tokens (input, output): EXAMPLES from OpenAI's public price list (standard tier,
# as of 2025), not a source of truth; prices change. `curator cost --prices FILE` takes yours.
# A model matches the longest name it starts with ("gpt-4o-mini-2024-07-18" -> gpt-4o-mini).
DEFAULT_PRICES: dict[str, tuple[float, float]] = {
    "gpt-3.5-turbo": (0.50, 1.50),
    "gpt-4o": (2.50, 10.00),
    "gpt-4o-mini": (0.15, 0.60),
    "gpt-4.1": (2.00, 8.00),
    "gpt-4.1-mini": (0.40, 1.60),
    "gpt-4.1-nano": (0.10, 0.40),
}


def parse_prices(text: str) -> dict[str, tuple[float, float]]:
    """A prices file: JSON {"model": {"input": USD per 1M tokens, "output": ...}, ...}."""
    try:
        data = json.loads(text)
    except ValueError as err:
        raise UserError(f"prices file is not JSON: {err}") from None
    if not isinstance(data, dict):
        raise UserError('prices file must be a JSON object {"model": {"input": X, "output": Y}}')
    prices = {}
    for model, entry in data.items():
        try:
            prices[model] = (float(entry["input"]), float(entry["output"]))
        except (TypeError, KeyError, ValueError):
            raise UserError(f'prices for {model!r} must be {{"input": USD per 1M tokens, "output": ...}}') from None
    return prices


def model_price(model: str, prices: dict[str, tuple[float, float]]) -> tuple[float, float] | None:
    matches = [name for name in prices if model == name or model.startswith(name + "-")]
    return prices[max(matches, key=len)] if matches else None


def request_cost(
    model: str, local: bool, prompt_tokens: int, completion_tokens: int, prices: dict[str, tuple[float, float]]
) -> float | None:
    """USD for these tokens: 0 on a local server, None for a model without a price."""
    if local:
        return 0.0
    price = model_price(model, prices)
    if price is None:
        return None
    return (prompt_tokens * price[0] + completion_tokens * price[1]) / 1e6


def price_usage(rows: list[dict], prices: dict[str, tuple[float, float]]) -> list[dict]:
    """Usage rows {model, local, answers, prompt_tokens, completion_tokens} with their prices
    (per 1M tokens) and cost in USD; `priced` says how: local (free), table, or unknown."""
    priced = []
    for row in rows:
        price = None if row["local"] else model_price(row["model"], prices)
        cost = request_cost(row["model"], row["local"], row["prompt_tokens"], row["completion_tokens"], prices)
        priced.append(
            {
                **row,
                "input_price": 0.0 if row["local"] else price and price[0],
                "output_price": 0.0 if row["local"] else price and price[1],
                "cost": cost,
                "priced": "local" if row["local"] else "table" if price else "unknown",
            }
        )
    return priced


def progress_message(answers: int, failed: int, errors: int, tokens: int, seconds: float, spend: float | None) -> str:
    """The progress bar's postfix: requests/s, tokens/s, errors and spend so far."""
    seconds = max(seconds, 1e-9)
    spent = "spend unknown" if spend is None else f"${spend:,.4f}"
    return (
        f"{answers / seconds:,.1f} req/s · {tokens / seconds:,.0f} tok/s · {errors:,} errors"
        f"{f' ({failed:,} failed)' if failed else ''} · {spent}"
    )


# --- prompt templates ----------------------------------------------------------------------

GPT4ALL_J_TEMPLATE = "Write a [TYPE] about [NOUN] in the style of [PERSON]"
_SLOT = re.compile(r"\[([A-Z][A-Z0-9_]*)\]")


def template_slots(template: str) -> list[str]:
    """The [NAME] slots of a template, in order of first appearance."""
    return list(dict.fromkeys(_SLOT.findall(template)))


def fill_template(template: str, values: dict[str, list[str]], sample: int | None = None, seed: int = 0) -> list[str]:
    """Every combination of the slots' values (the first slot varies slowest), or a seeded
    sample of `sample` distinct combinations, drawn without building the whole product.

    "a [TYPE]" becomes "an" before a value that starts with a vowel ("an essay").
    """
    slots = template_slots(template)
    if not slots:
        raise UserError("the template has no [SLOT] to fill (slots are [UPPERCASE] names)")
    missing = [s for s in slots if not values.get(s)]
    if missing:
        raise UserError(f"no values for {', '.join('[' + s + ']' for s in missing)}")
    unknown = sorted(set(values) - set(slots))
    if unknown:
        raise UserError(f"the template has no slot {', '.join('[' + s + ']' for s in unknown)}")
    lists = [values[s] for s in slots]
    total = math.prod(len(v) for v in lists)
    if sample is None or sample >= total:
        combos = itertools.product(*lists)
    else:
        combos = (_combination(index, lists) for index in random.Random(seed).sample(range(total), sample))
    return [_fill(template, dict(zip(slots, combo))) for combo in combos]


def _combination(index: int, lists: list[list[str]]) -> tuple[str, ...]:
    picked = []
    for values in reversed(lists):  # mixed radix, last slot fastest, like itertools.product
        index, digit = divmod(index, len(values))
        picked.append(values[digit])
    return tuple(reversed(picked))


def _fill(template: str, chosen: dict[str, str]) -> str:
    def replace(match: re.Match) -> str:
        article, value = match.group(1), chosen[match.group(2)]
        if article and value[:1].lower() in "aeiou":
            article = article[0] + "n "
        return (article or "") + value

    return re.sub(r"(\b[Aa] )?\[([A-Z][A-Z0-9_]*)\]", replace, template)
