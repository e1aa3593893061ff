"""The distill job: answer prompts through any OpenAI-compatible API, exactly once.

A bounded pool of worker threads sends the requests (the official `openai` client, which is
thread-safe); each worker retries its prompt by curator.distill's policy and hands back an
outcome. The main thread alone writes to DuckDB: outcomes are committed in small batches
(every COMMIT_SECONDS or COMMIT_OUTCOMES), each answer's pair together with its prompt's
`done`, so a kill -9 loses only answers not yet committed (their prompts are still pending
and are asked again) and a rerun asks no prompt whose answer is stored.

The API key is read from OPENAI_API_KEY when the client is built and goes nowhere else: not
into job params, rows or messages (errors are redacted before they are stored or shown).
"""
from __future__ import annotations

import os
import random
import threading
import time
from collections.abc import Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from pathlib import Path

import duckdb
import openai
import orjson
import pyarrow as pa

from curator import distill, formats, readers
from curator.distill import Answer, Prompt, RetryPolicy
from jobs.runner import Job, Progress, no_progress
from storage import distill as distill_rows
from storage import files as file_rows
from storage import pairs as pair_rows
from storage import rejects as reject_rows

# Outcomes are committed when this much time has passed since the last commit, or when this
# many are waiting, or when nothing is in flight: at most ~a quarter second of answers is
# lost to a kill -9, and commits stay off the request path.
COMMIT_SECONDS = 0.25
COMMIT_OUTCOMES = 512
PAGE = 2048                     # prompts read from the database at a time
LOCAL_PLACEHOLDER_KEY = "curator-local-no-key"  # the client needs a key; loopback servers ignore it
TEXT_SUFFIXES = {".txt"}


@dataclass(frozen=True)
class DistillOptions:
    model: str
    base_url: str | None = None            # None: $OPENAI_BASE_URL, else OpenAI's
    system: str | None = None
    max_tokens: int = 512
    temperature: float | None = 0.7
    source: str | None = None              # default: "<prompts file stem or source>:<model>"
    concurrency: int = 8
    timeout: float = 120.0                 # seconds per request
    policy: RetryPolicy = field(default_factory=RetryPolicy)
    prompt_field: str | None = None        # read any flat records: the key holding the prompt

    def __post_init__(self):
        if self.concurrency < 1:
            raise ValueError("--concurrency must be at least 1")
        if self.max_tokens < 1:
            raise ValueError("--max-tokens must be at least 1")
        if self.policy.max_tries < 1:
            raise ValueError("--max-tries must be at least 1")


@dataclass
class DistillReport:
    job_id: int
    file_id: int               # the run's files row: its pairs have this file_id
    source: str
    model: str
    status: str = "new"        # new | resumed | nothing to do
    prompts: int = 0           # in the run, all of them
    already: int = 0           # answered by earlier runs
    answered: int = 0          # answered now
    failed: int = 0            # given up on now (error recorded on the prompt)
    pending: int = 0           # left unasked (interrupted or aborted)
    errors: int = 0            # failed requests, retried ones included
    truncated: int = 0         # answers cut at max_tokens (finish_reason "length")
    rejects: int = 0           # records of the prompts file that hold no prompt
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0   # USD by the price table; None when a model has no price
    seconds: float = 0.0


def distill_prompts(con: duckdb.DuckDBPyConnection, prompts: str | Path | None, options: DistillOptions,
                    from_source: str | None = None, prices: dict | None = None,
                    progress: Progress = no_progress) -> DistillReport:
    """Answer every prompt of a prompts file (or of a source's pairs) not answered yet."""
    if (prompts is None) == (from_source is None):
        raise ValueError("give a prompts file or --from-source NAME (one of them)")
    base_url = options.base_url or os.environ.get("OPENAI_BASE_URL") or None
    client = _client(base_url, options)
    local = distill.is_loopback(base_url)
    prices = distill.DEFAULT_PRICES if prices is None else prices
    params = {"prompts": str(prompts) if prompts else None, "from_source": from_source,
              "base_url": distill.public_url(base_url),
              **{k: v for k, v in asdict(options).items() if k not in ("base_url", "policy")},
              **asdict(options.policy)}
    with Job(con, "distill", params, progress) as job:
        report, file_id, identity = _open_run(con, job, Path(prompts) if prompts else None, from_source,
                                              options, base_url, local)
        started = time.monotonic()
        try:
            _answer(con, job, client, file_id, identity, options, local, prices, report, started)
        finally:
            client.close()
            report.seconds = time.monotonic() - started
            left = distill_rows.counts(con, file_id)
            report.pending = left["pending"]
            job.counts = _job_counts(report)
        if left["pending"] == 0:
            file_rows.finish(con, file_id, pair_rows.file_duplicates(con, file_id))
    return report


def _client(base_url: str | None, options: DistillOptions) -> openai.OpenAI:
    key = os.environ.get("OPENAI_API_KEY")
    if not key:
        if not distill.is_loopback(base_url):
            raise ValueError("set OPENAI_API_KEY (the key is read from the environment only), "
                             "or use --base-url with a server on this machine")
        key = LOCAL_PLACEHOLDER_KEY
    # Our own retry policy decides (Retry-After, backoff, shrinking): the client's is off.
    return openai.OpenAI(api_key=key, base_url=base_url, timeout=options.timeout, max_retries=0)


def _job_counts(report: DistillReport) -> dict:
    return {k: getattr(report, k) for k in ("prompts", "already", "answered", "failed", "pending", "errors",
                                             "truncated", "rejects", "prompt_tokens", "completion_tokens", "cost")}


# --- the run and its prompts ---------------------------------------------------------------


def _open_run(con, job: Job, path: Path | None, from_source: str | None, options: DistillOptions,
              base_url: str | None, local: bool) -> tuple[DistillReport, int, str]:
    """Find or create the run's files row, queue its prompts; (report, file id, identity)."""
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"no such prompts file: {path}")
        # The prompts are the file's content as read: --prompt-field is part of what they are.
        key = f"file:{readers.file_sha256(path)}" + (f"#{options.prompt_field}" if options.prompt_field else "")
        shown, size, stem = str(path), path.stat().st_size, path.name.split(".")[0]
    else:
        if not distill_rows.source_exists(con, from_source):
            raise ValueError(f"no pairs with source {from_source!r} (see `curator stats`)")
        key, shown, size, stem = f"source:{from_source}", f"source:{from_source}", 0, from_source
    identity = distill.run_identity(key, options.model, options.system, options.max_tokens, options.temperature)
    public = distill.public_url(base_url)
    row = file_rows.find(con, identity)
    con.begin()
    if row is None:
        source = options.source or f"{stem}:{options.model}"
        settings = {"system": options.system, "max_tokens": options.max_tokens,
                    "temperature": options.temperature, "source": source}
        row = file_rows.start(con, identity, shown, size, {"distill": key, **settings}, "distill", job.id)
        distill_rows.create_run(con, row.id, options.model, public, local, key, settings)
        rejects = _queue_file(con, job, row.id, path, options.prompt_field) if path else 0
        status = "new"
    else:
        source = distill_rows.run_settings(con, row.id)["source"]
        if options.source and options.source != source:
            con.rollback()
            raise ValueError(f"this run was started with --source {source!r}: rerun with it to resume, "
                             "or change the model or a setting to start another run")
        file_rows.take_over(con, row.id, job.id, shown)
        distill_rows.set_endpoint(con, row.id, public, local)
        rejects, status = 0, "resumed"
    if from_source is not None:
        distill_rows.add_source_prompts(con, row.id, from_source)
    counts = distill_rows.counts(con, row.id)
    if sum(counts.values()) == 0:
        file_rows.finish(con, row.id, 0)  # nothing to answer, ever: the rejects say why
    con.commit()
    report = DistillReport(job.id, row.id, source, options.model, status, prompts=sum(counts.values()),
                           already=counts["done"], rejects=rejects)
    if report.prompts == 0:
        raise ValueError(f"no prompts in {shown}" + (f" ({rejects:,} records rejected: `curator rejects "
                                                      f"--job {job.id}`)" if rejects else ""))
    if counts["done"] == report.prompts:
        report.status = "nothing to do"
    return report, row.id, identity


def _queue_file(con, job: Job, file_id: int, path: Path, prompt_field: str | None) -> int:
    """Store the file's prompts as pending (and its records without a prompt as rejects)."""
    rejected = 0
    for prompts, (lines, reasons, raws) in _read_prompts(path, prompt_field):
        distill_rows.add_prompts(con, file_id, prompts)
        reject_rows.insert(con, job.id, file_id, str(path), lines, reasons, raws)
        rejected += len(lines)
    return rejected


def _read_prompts(path: Path, prompt_field: str | None) -> Iterator[tuple[pa.Table, tuple[list, list, list]]]:
    """(prompts, rejects) batch by batch: a .txt file holds one prompt per line (blank lines
    skipped); any file ingest reads holds records whose prompts distill.record_prompts finds."""
    if path.suffix.lower() in TEXT_SUFFIXES:
        with open(path, encoding="utf-8") as text:
            found = [(number, 0, line.strip(), None) for number, line in enumerate(text, start=1) if line.strip()]
        yield _prompt_table(found), ([], [], [])
        return
    for batch in readers.read_batches(path):
        found, lines, reasons, raws = [], [], [], []
        for line, reason, raw in batch.errors:
            lines.append(line), reasons.append(reason), raws.append(raw)
        for line, value, raw in zip(batch.lines, batch.values, batch.raws):
            try:
                asked = distill.record_prompts(value, prompt_field)
            except formats.RecordError as err:
                lines.append(line), reasons.append(err.reason)
                raws.append(readers.raw_text(raw if raw is not None else orjson.dumps(value, default=str)))
                continue
            found.extend((line, index, prompt, orjson.dumps(context).decode() if context else None)
                         for index, (prompt, context) in enumerate(asked))
        yield _prompt_table(found), (lines, reasons, raws)


def _prompt_table(rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows)) if rows else [[], [], [], []]
    return pa.Table.from_arrays([pa.array(c, t.type) for c, t in zip(columns, distill_rows.PROMPT_SCHEMA)],
                                schema=distill_rows.PROMPT_SCHEMA)


# --- asking --------------------------------------------------------------------------------


@dataclass
class Outcome:
    """What one worker got for one prompt: an answer, or the error it gave up with."""
    item: Prompt
    sent: list[dict]
    tries: int
    errors: int                     # failed requests among the tries
    max_tokens: int
    answer: Answer | None = None
    error: str | None = None


class RunAborted(Exception):
    """An error every prompt would hit alike (bad key, unknown model, no quota)."""


def _ask(client: openai.OpenAI, item: Prompt, options: DistillOptions, key: str | None,
         stop: threading.Event) -> Outcome | None:
    """Ask until answered, given up or stopped (None: stopped before an outcome; the prompt
    stays pending)."""
    rng = random.Random()
    sent = distill.request_messages(item.prompt, item.context, options.system)
    outcome = Outcome(item, sent, 0, 0, options.max_tokens)
    extra = {} if options.temperature is None else {"temperature": options.temperature}
    while not stop.is_set():
        outcome.tries += 1
        retry_after, body = None, {}
        try:
            raw = client.chat.completions.with_raw_response.create(
                model=options.model, messages=sent, max_tokens=outcome.max_tokens, **extra)
            outcome.answer = distill.parse_answer(raw.http_response.content, options.model)
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


def _answer(con, job: Job, client: openai.OpenAI, file_id: int, identity: str, options: DistillOptions,
            local: bool, prices: dict, report: DistillReport, started: float) -> None:
    key = os.environ.get("OPENAI_API_KEY")
    total = report.prompts - report.already
    prompts = _todo(con, file_id)
    stop = threading.Event()
    pool = ThreadPoolExecutor(options.concurrency, thread_name_prefix="distill")
    in_flight: set[Future] = set()
    arrived: list[Outcome] = []
    last_commit = time.monotonic()
    aborted: RunAborted | None = None

    def commit() -> None:
        # Taken off the list first: an interrupt in mid-commit must not commit a batch twice
        # (a batch whose transaction did not finish is rolled back; its prompts stay pending).
        nonlocal last_commit
        batch = arrived[:]
        arrived.clear()
        con.begin()
        _store(con, job, identity, file_id, batch, local, prices, report)
        job.report(report.answered + report.failed, total, distill.progress_message(
            report.answered, report.failed, report.errors, report.completion_tokens,
            time.monotonic() - started, report.cost))
        con.commit()
        last_commit = time.monotonic()

    try:
        while True:
            while aborted is None and len(in_flight) < 2 * options.concurrency:
                item = next(prompts, None)
                if item is None:
                    break
                in_flight.add(pool.submit(_ask, client, item, options, key, stop))
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
            if arrived and (not in_flight or len(arrived) >= COMMIT_OUTCOMES
                            or time.monotonic() - last_commit >= COMMIT_SECONDS):
                commit()
    except BaseException:
        # Interrupted: keep what has arrived, ask nothing more, do not wait for slow requests.
        stop.set()
        pool.shutdown(wait=False, cancel_futures=True)
        _rollback(con)
        arrived.extend(f.result() for f in in_flight if f.done() and not f.cancelled() and f.exception() is None
                       and f.result() is not None)
        if arrived:
            commit()
        raise
    pool.shutdown(wait=True)
    if aborted is not None:
        raise ValueError(f"stopped: {aborted} (every prompt would fail alike; answers so far are kept, "
                         "rerun the same command to resume)")


def _todo(con, file_id: int) -> Iterator[Prompt]:
    """Prompts still to answer, a page at a time (keyset order: pages never repeat a prompt)."""
    after = None
    while True:
        page = distill_rows.todo(con, file_id, after, PAGE)
        yield from page
        if len(page) < PAGE:
            return
        after = (page[-1].line, page[-1].pair_index)


def _rollback(con) -> None:
    try:
        con.rollback()
    except duckdb.TransactionException:
        pass  # no transaction was open


def _store(con, job: Job, identity: str, file_id: int, outcomes: list[Outcome], local: bool,
           prices: dict, report: DistillReport) -> None:
    """Write a batch of outcomes (inside the caller's transaction): the answered pairs and
    every prompt's state; add them to the report."""
    answered = [o for o in outcomes if o.answer is not None]
    pairs = pa.Table.from_pydict({
        "line": [o.item.line for o in answered],
        "pair_index": [o.item.pair_index for o in answered],
        "prompt": [o.item.prompt for o in answered],
        "response": [o.answer.response for o in answered],
        "messages": [_messages_json(o) for o in answered],
        "source": [report.source] * len(answered),
        "model": [o.answer.model for o in answered],
        "finish_reason": [o.answer.finish_reason for o in answered],
    }, schema=pair_rows.BATCH_SCHEMA)
    results = pa.Table.from_pydict({
        "line": [o.item.line for o in outcomes],
        "pair_index": [o.item.pair_index for o in outcomes],
        "status": ["done" if o.answer else "failed" for o in outcomes],
        "attempts": [o.tries for o in outcomes],
        "error": [o.error for o in outcomes],
        "max_tokens": [o.max_tokens if o.answer else None for o in outcomes],
        "prompt_tokens": [o.answer.prompt_tokens if o.answer else None for o in outcomes],
        "completion_tokens": [o.answer.completion_tokens if o.answer else None for o in outcomes],
    }, schema=distill_rows.RESULT_SCHEMA)
    pair_rows.insert(con, identity, file_id, job.id, pairs)
    distill_rows.record(con, file_id, results)
    for o in outcomes:
        report.errors += o.errors
        if o.answer is None:
            report.failed += 1
            continue
        report.answered += 1
        report.truncated += o.answer.finish_reason == "length"
        prompt_tokens, completion_tokens = o.answer.prompt_tokens or 0, o.answer.completion_tokens or 0
        report.prompt_tokens += prompt_tokens
        report.completion_tokens += completion_tokens
        cost = distill.request_cost(o.answer.model, local, prompt_tokens, completion_tokens, prices)
        report.cost = None if cost is None or report.cost is None else report.cost + cost


def _messages_json(outcome: Outcome) -> str | None:
    messages = distill.stored_messages(outcome.sent, outcome.answer.response)
    return orjson.dumps(messages).decode() if messages else None
