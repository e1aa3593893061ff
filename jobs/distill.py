"""The distill job: answer prompts through any OpenAI-compatible API, exactly once.

jobs/request_pool.py sends the requests (a bounded thread pool, retries by curator.distill's
policy) and hands back outcomes in small batches; this job stores each batch in one
transaction, each answer's pair together with its prompt's `done`, so a kill -9 loses only
answers not yet committed (their prompts are still pending and are asked again) and a rerun
asks no prompt whose answer is stored.

The API key is read from OPENAI_API_KEY when the client is built and goes nowhere else: not
into job params, rows or messages (errors are redacted before they are stored or shown).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import openai
import orjson
import pyarrow as pa

from curator import distill, formats, readers
from curator.distill import Prompt
from curator.errors import UserError
from jobs import request_pool
from jobs.request_pool import Outcome, RequestOptions
from jobs.runner import Job, Progress, no_progress
from storage import distill as distill_rows
from storage import files as file_rows
from storage import pairs as pair_rows
from storage import rejects as reject_rows
from storage.db import Database

PAGE = 2048  # prompts read from the database at a time
TEXT_SUFFIXES = {".txt"}


@dataclass(frozen=True)
class DistillOptions(RequestOptions):
    system: str | None = None
    source: str | None = None  # default: "<prompts file stem or source>:<model>"
    prompt_field: str | None = None  # read any flat records: the key holding the prompt


@dataclass
class DistillReport:
    job_id: int
    file_id: int  # the run's files row: its pairs have this file_id
    source: str
    model: str
    status: str = "new"  # new | resumed | nothing to do
    prompts: int = 0  # in the run, all of them
    already: int = 0  # answered by earlier runs
    answered: int = 0  # answered now
    failed: int = 0  # given up on now (error recorded on the prompt)
    pending: int = 0  # left unasked (interrupted or aborted)
    errors: int = 0  # failed requests, retried ones included
    truncated: int = 0  # answers cut at max_tokens (finish_reason "length")
    rejects: int = 0  # records of the prompts file that hold no prompt
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0  # USD by the price table; None when a model has no price
    seconds: float = 0.0


def distill_prompts(
    db: Database,
    prompts: str | Path | None,
    options: DistillOptions,
    from_source: str | None = None,
    prices: dict | None = None,
    progress: Progress = no_progress,
) -> DistillReport:
    """Answer every prompt of a prompts file (or of a source's pairs) not answered yet."""
    if (prompts is None) == (from_source is None):
        raise UserError("give a prompts file or --from-source NAME (one of them)")
    base_url = request_pool.resolved_base_url(options)
    client = request_pool.client(base_url, options)
    local = distill.is_loopback(base_url)
    prices = distill.DEFAULT_PRICES if prices is None else prices
    params = {
        "prompts": str(prompts) if prompts else None,
        "from_source": from_source,
        "base_url": distill.public_url(base_url),
        **{k: v for k, v in asdict(options).items() if k not in ("base_url", "policy")},
        **asdict(options.policy),
    }
    with Job(db, "distill", params, progress) as job:
        with db.writing() as con:
            report, file_id, identity = _open_run(
                con, job, Path(prompts) if prompts else None, from_source, options, base_url, local
            )
        started = time.monotonic()
        try:
            _answer(db, job, client, file_id, identity, options, local, prices, report, started)
        finally:
            client.close()
            report.seconds = time.monotonic() - started
            with db.reading() as con:
                left = distill_rows.counts(con, file_id)
            report.pending = left["pending"]
            job.counts = _job_counts(report)
        if left["pending"] == 0:
            with db.writing() as con:
                file_rows.finish(con, file_id, pair_rows.file_duplicates(con, file_id))
    return report


def _job_counts(report: DistillReport) -> dict:
    return {
        k: getattr(report, k)
        for k in (
            "prompts",
            "already",
            "answered",
            "failed",
            "pending",
            "errors",
            "truncated",
            "rejects",
            "prompt_tokens",
            "completion_tokens",
            "cost",
        )
    }


# --- the run and its prompts ---------------------------------------------------------------


def _open_run(
    con,
    job: Job,
    path: Path | None,
    from_source: str | None,
    options: DistillOptions,
    base_url: str | None,
    local: bool,
) -> tuple[DistillReport, int, str]:
    """Find or create the run's files row, queue its prompts; (report, file id, identity).
    Call inside a write transaction: it commits the queue (or nothing, on an error)."""
    if path is not None:
        if not path.is_file():
            raise FileNotFoundError(f"no such prompts file: {path}")
        # The prompts are the file's content as read: --prompt-field is part of what they are.
        key = f"file:{readers.file_sha256(path)}" + (f"#{options.prompt_field}" if options.prompt_field else "")
        shown, size, stem = str(path), path.stat().st_size, path.name.split(".")[0]
    else:
        if not distill_rows.source_exists(con, from_source):
            raise UserError(f"no pairs with source {from_source!r} (see `curator stats`)")
        key, shown, size, stem = f"source:{from_source}", f"source:{from_source}", 0, from_source
    identity = distill.run_identity(key, options.model, options.system, options.max_tokens, options.temperature)
    public = distill.public_url(base_url)
    row = file_rows.find(con, identity)
    if row is None:
        source = options.source or f"{stem}:{options.model}"
        settings = {
            "system": options.system,
            "max_tokens": options.max_tokens,
            "temperature": options.temperature,
            "source": source,
        }
        row = file_rows.start(con, identity, shown, size, {"distill": key, **settings}, "distill", job.id)
        distill_rows.create_run(con, row.id, options.model, public, local, key, settings)
        rejects = _queue_file(con, job, row.id, path, options.prompt_field) if path else 0
        status = "new"
    else:
        source = distill_rows.run_settings(con, row.id)["source"]
        if options.source and options.source != source:
            raise UserError(
                f"this run was started with --source {source!r}: rerun with it to resume, "
                "or change the model or a setting to start another run"
            )
        file_rows.take_over(con, row.id, job.id, shown)
        distill_rows.set_endpoint(con, row.id, public, local)
        rejects, status = 0, "resumed"
    if from_source is not None:
        distill_rows.add_source_prompts(con, row.id, from_source)
    counts = distill_rows.counts(con, row.id)
    if sum(counts.values()) == 0:
        file_rows.finish(con, row.id, 0)  # nothing to answer, ever: the rejects say why
    report = DistillReport(
        job.id,
        row.id,
        source,
        options.model,
        status,
        prompts=sum(counts.values()),
        already=counts["done"],
        rejects=rejects,
    )
    if report.prompts == 0:
        raise UserError(
            f"no prompts in {shown}"
            + (f" ({rejects:,} records rejected: `curator rejects --job {job.id}`)" if rejects else "")
        )
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
            found.extend(
                (line, index, prompt, orjson.dumps(context).decode() if context else None)
                for index, (prompt, context) in enumerate(asked)
            )
        yield _prompt_table(found), (lines, reasons, raws)


def _prompt_table(rows: list[tuple]) -> pa.Table:
    columns = list(zip(*rows)) if rows else [[], [], [], []]
    return pa.Table.from_arrays(
        [pa.array(c, t.type) for c, t in zip(columns, distill_rows.PROMPT_SCHEMA)], schema=distill_rows.PROMPT_SCHEMA
    )


# --- asking --------------------------------------------------------------------------------


def _answer(
    db: Database,
    job: Job,
    client: openai.OpenAI,
    file_id: int,
    identity: str,
    options: DistillOptions,
    local: bool,
    prices: dict,
    report: DistillReport,
    started: float,
) -> None:
    total = report.prompts - report.already

    def store(con, batch: list[Outcome[Prompt]]) -> None:
        _store(con, job, identity, file_id, batch, local, prices, report)
        job.report(
            report.answered + report.failed,
            total,
            distill.progress_message(
                report.answered,
                report.failed,
                report.errors,
                report.completion_tokens,
                time.monotonic() - started,
                report.cost,
            ),
            con,
        )

    def todo(after: tuple[int, int] | None, limit: int) -> list[Prompt]:
        with db.reading() as con:
            return distill_rows.todo(con, file_id, after, limit)

    prompts = request_pool.keyset_pages(todo, lambda prompt: (prompt.line, prompt.pair_index), PAGE)
    request_pool.ask_all(
        db, client, prompts, lambda p: distill.request_messages(p.prompt, p.context, options.system), options, store
    )


def _store(
    con,
    job: Job,
    identity: str,
    file_id: int,
    outcomes: list[Outcome],
    local: bool,
    prices: dict,
    report: DistillReport,
) -> None:
    """Write a batch of outcomes (inside the caller's transaction): the answered pairs and
    every prompt's state; add them to the report."""
    answered = [o for o in outcomes if o.answer is not None]
    pairs = pa.Table.from_pydict(
        {
            "line": [o.item.line for o in answered],
            "pair_index": [o.item.pair_index for o in answered],
            "prompt": [o.item.prompt for o in answered],
            "response": [o.answer.response for o in answered],
            "messages": [_messages_json(o) for o in answered],
            "source": [report.source] * len(answered),
            "model": [o.answer.model for o in answered],
            "finish_reason": [o.answer.finish_reason for o in answered],
        },
        schema=pair_rows.BATCH_SCHEMA,
    )
    results = pa.Table.from_pydict(
        {
            "line": [o.item.line for o in outcomes],
            "pair_index": [o.item.pair_index for o in outcomes],
            "status": ["done" if o.answer else "failed" for o in outcomes],
            "attempts": [o.tries for o in outcomes],
            "error": [o.error for o in outcomes],
            "max_tokens": [o.max_tokens if o.answer else None for o in outcomes],
            "prompt_tokens": [o.answer.prompt_tokens if o.answer else None for o in outcomes],
            "completion_tokens": [o.answer.completion_tokens if o.answer else None for o in outcomes],
        },
        schema=distill_rows.RESULT_SCHEMA,
    )
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
