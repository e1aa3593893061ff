"""Chat requests to any OpenAI-compatible API, each asked until answered, exactly once.

What `curator distill` and `curator quality judge` share. A bounded pool of worker threads
sends the requests (the official `openai` client, which is thread-safe); each worker retries
its item by curator.distill's policy (Retry-After, backoff, shrinking max_tokens, aborting on
errors every item would hit alike) and hands back an Outcome. The main thread alone writes
to DuckDB: outcomes are handed to the caller's `store` in small batches (every
COMMIT_SECONDS or COMMIT_OUTCOMES), each batch in one committed transaction, so a kill -9
loses only outcomes not yet committed; the caller's state rows, written by `store` in that
transaction, are what make a rerun ask nothing already stored.

The API key is read from OPENAI_API_KEY when the client is built and goes nowhere else:
errors are redacted before they are returned, stored or shown.
"""

from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from typing import Generic, TypeVar

import duckdb
import openai

from curator import distill
from curator.distill import Answer, RetryPolicy
from curator.errors import UserError
from storage.db import Database

T = TypeVar("T")
K = TypeVar("K")

# Outcomes are committed when this much time has passed since the last commit, or when this
# many are waiting, or when nothing is in flight: at most ~a quarter second of answers is
# lost to a kill -9, and commits stay off the request path.
COMMIT_SECONDS = 0.25
COMMIT_OUTCOMES = 512
LOCAL_PLACEHOLDER_KEY = "curator-local-no-key"  # the client needs a key; loopback servers ignore it


@dataclass(frozen=True)
class RequestOptions:
    """How requests are sent; the jobs' option classes add what they ask."""

    model: str
    base_url: str | None = None  # None: $OPENAI_BASE_URL, else OpenAI's
    max_tokens: int = 512
    temperature: float | None = 0.7
    concurrency: int = 8
    timeout: float = 120.0  # seconds per request
    policy: RetryPolicy = field(default_factory=RetryPolicy)

    def __post_init__(self):
        if self.concurrency < 1:
            raise UserError("--concurrency must be at least 1")
        if self.max_tokens < 1:
            raise UserError("--max-tokens must be at least 1")
        if self.policy.max_tries < 1:
            raise UserError("--max-tries must be at least 1")


def resolved_base_url(options: RequestOptions) -> str | None:
    return options.base_url or os.environ.get("OPENAI_BASE_URL") or None


def client(base_url: str | None, options: RequestOptions) -> openai.OpenAI:
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        if not distill.is_loopback(base_url):
            raise UserError(
                "set OPENAI_API_KEY (the key is read from the environment only), "
                "or use --base-url with a server on this machine"
            )
        key = LOCAL_PLACEHOLDER_KEY
    # Our own retry policy decides (Retry-After, backoff, shrinking): the client's is off.
    return openai.OpenAI(api_key=key, base_url=base_url, timeout=options.timeout, max_retries=0)


@dataclass
class Outcome(Generic[T]):
    """What one worker got for one item: an answer (and what `validate` made of it), or the
    error it gave up with."""

    item: T
    sent: list[dict]
    tries: int
    errors: int  # failed requests among the tries
    max_tokens: int
    answer: Answer | None = None
    verdict: object = None  # validate(answer), when a validate was given
    error: str | None = None
    # Tokens of every completion received, rejected ones included: what the API bills.
    prompt_tokens: int = 0
    completion_tokens: int = 0


class RunAborted(Exception):
    """An error every item would hit alike (bad key, unknown model, no quota)."""


def _ask(
    client: openai.OpenAI,
    item: T,
    sent: list[dict],
    options: RequestOptions,
    validate: Callable[[Answer], object] | None,
    key: str | None,
    stop: threading.Event,
) -> Outcome[T] | None:
    """Ask until answered, given up or stopped (None: stopped before an outcome; the item
    stays pending). An answer that `validate` rejects (MalformedAnswer) is retried like a
    malformed body."""
    rng = random.Random()
    outcome = Outcome(item, sent, 0, 0, options.max_tokens)
    extra = {} if options.temperature is None else {"temperature": options.temperature}
    while not stop.is_set():
        outcome.tries += 1
        retry_after, body = None, {}
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=options.model, messages=sent, max_tokens=outcome.max_tokens, **extra
            )
            answer = distill.parse_answer(raw.http_response.content, options.model)
            outcome.prompt_tokens += answer.prompt_tokens or 0
            outcome.completion_tokens += answer.completion_tokens or 0
            outcome.verdict = validate(answer) if validate else None
            outcome.answer = answer
            return outcome
        except openai.APIStatusError as err:
            body = err.body if isinstance(err.body, dict) else {}
            message = f"HTTP {err.status_code}: {body.get('message') or err.message}"
            action = distill.classify(err.status_code, message, err.code or body.get("type"))
            retry_after = distill.retry_after_seconds(dict(err.response.headers))
        except openai.APITimeoutError:
            message, action = f"timed out after {options.timeout:g} s", distill.RETRY
        except openai.APIConnectionError as err:
            message, action = f"connection error: {err.__cause__ or err}", distill.RETRY
        except distill.MalformedAnswer as err:
            message, action = f"malformed answer: {err}", distill.RETRY
        outcome.errors += 1
        message = distill.redact(message, key)
        if action == distill.ABORT:
            raise RunAborted(message)
        if action == distill.SHRINK:
            smaller = distill.shrunk_max_tokens(outcome.max_tokens, message, body)
            if smaller is not None and outcome.tries < options.policy.max_tries:
                outcome.max_tokens = smaller
                continue
        if action != distill.RETRY or outcome.tries >= options.policy.max_tries:
            outcome.error = f"{message} (after {outcome.tries} request{'s' if outcome.tries > 1 else ''})"
            return outcome
        if stop.wait(options.policy.delay(outcome.tries, retry_after, rng)):
            break
    return None


def ask_all(
    db: Database,
    client: openai.OpenAI,
    items: Iterator[T],
    messages: Callable[[T], list[dict]],
    options: RequestOptions,
    store: Callable[[duckdb.DuckDBPyConnection, list[Outcome[T]]], None],
    validate: Callable[[Answer], object] | None = None,
) -> None:
    """Ask every item (messages(item) is what is sent) with `options.concurrency` requests in
    flight, and call store(con, batch) inside a short write of its own. Items come
    from the iterator only as workers free up, so it may read the database a page at a time."""
    key = os.environ.get("OPENAI_API_KEY")
    stop = threading.Event()
    pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="chat-request")
    in_flight: set[Future] = set()
    arrived: list[Outcome[T]] = []
    last_commit = time.monotonic()
    aborted: RunAborted | None = None

    def commit() -> None:
        # Taken off the list first: an interrupt in mid-commit must not commit a batch twice
        # (a batch whose transaction did not finish is rolled back; its items stay pending).
        nonlocal last_commit
        batch = arrived[:]
        arrived.clear()
        with db.writing() as con:
            store(con, batch)
        last_commit = time.monotonic()

    try:
        while True:
            while aborted is None and len(in_flight) < 2 * options.concurrency:
                item = next(items, None)
                if item is None:
                    break
                in_flight.add(pool.submit(_ask, client, item, messages(item), options, validate, key, stop))
            if not in_flight:
                break
            done, in_flight = wait(in_flight, timeout=COMMIT_SECONDS, return_when=FIRST_COMPLETED)
            for future in done:
                try:
                    outcome = future.result()
                except RunAborted as err:
                    aborted = aborted or err
                    stop.set()
                    continue
                if outcome is not None:
                    arrived.append(outcome)
            if arrived and (
                not in_flight or len(arrived) >= COMMIT_OUTCOMES or time.monotonic() - last_commit >= COMMIT_SECONDS
            ):
                commit()
    except BaseException:
        # Interrupted: keep what has arrived, ask nothing more, do not wait for slow requests.
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        arrived.extend(
            f.result()
            for f in in_flight
            if f.done() and not f.cancelled() and f.exception() is None and f.result() is not None
        )
        if arrived:
            commit()
        raise
    pool.shutdown(wait=True)
    if aborted is not None:
        raise UserError(
            f"stopped: {aborted} (every request would fail alike; what was stored so far is kept, "
            "rerun the same command to resume)"
        )


def keyset_pages(fetch: Callable[[K | None, int], list[T]], key: Callable[[T], K], page: int) -> Iterator[T]:
    """fetch(after, limit)'s rows, a page at a time: `after` is the key of the last row read
    (None first), so pages never repeat a row while earlier rows change state."""
    after = None
    while True:
        rows = fetch(after, page)
        yield from rows
        if len(rows) < page:
            return
        after = key(rows[-1])
