"""The judge job: a 1-5 rating and a one-line reason per pair from an LLM judge, exactly once.

The run is a quality_runs row found by its identity (model, rubric, max tokens, temperature),
so the same command continues it: pairs (not deleted) without a row are queued as pending,
and only pending or failed ones are asked. jobs/request_pool.py sends the requests and
retries them (a verdict without a readable score is retried like a malformed body); each
batch of verdicts is stored in one transaction with its rows' `done`, so a kill -9 loses only
verdicts not yet committed and a rerun asks no pair whose score is stored.
"""

from __future__ import annotations

import hashlib
import itertools
import time
from dataclasses import asdict, dataclass, field

import pyarrow as pa

from curator import distill
from curator import judge as judging
from curator.errors import UserError
from curator.judge import PairText
from jobs import request_pool
from jobs.request_pool import Outcome, RequestOptions
from jobs.runner import Job, Progress, no_progress
from storage import judge as judge_rows
from storage import quality as quality_rows
from storage.db import Database

PAGE = 2048  # pairs read from the database at a time


@dataclass(frozen=True)
class JudgeOptions(RequestOptions):
    max_tokens: int = 128  # a score and one line
    temperature: float | None = 0.0  # the same pair gets the same verdict
    rubric: str = judging.DEFAULT_RUBRIC
    limit: int | None = None  # judge at most this many pairs now (a rerun continues)

    def __post_init__(self):
        super().__post_init__()
        judging.check_rubric(self.rubric)
        if self.limit is not None and self.limit < 1:
            raise UserError("--limit must be at least 1")


@dataclass
class JudgeReport:
    job_id: int
    run_id: int
    model: str
    status: str = "new"  # new | resumed | nothing to do
    pairs: int = 0  # in the run (not deleted)
    already: int = 0  # scored by earlier runs
    judged: int = 0  # scored now
    failed: int = 0  # given up on now (error recorded on the pair's row)
    pending: int = 0  # left unasked (--limit, interrupted or aborted)
    errors: int = 0  # failed requests and unreadable verdicts, retried ones included
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cost: float | None = 0.0  # USD by the price table; None when the model has no price
    seconds: float = 0.0
    mean_score: float | None = None  # of every score the run has stored
    histogram: dict[int, int] = field(default_factory=dict)  # score -> pairs, the same scores


def judge(
    db: Database, options: JudgeOptions, prices: dict | None = None, progress: Progress = no_progress
) -> JudgeReport:
    """Rate every pair (not deleted) that this judge run has not scored yet."""
    base_url = request_pool.resolved_base_url(options)
    client = request_pool.client(base_url, options)
    local = distill.is_loopback(base_url)
    prices = distill.DEFAULT_PRICES if prices is None else prices
    settings = {"max_tokens": options.max_tokens, "temperature": options.temperature}
    params = {
        "model": options.model,
        "base_url": distill.public_url(base_url),
        **settings,
        "rubric_sha256": hashlib.sha256(options.rubric.encode()).hexdigest(),
        "concurrency": options.concurrency,
        "timeout": options.timeout,
        "limit": options.limit,
        **asdict(options.policy),
    }
    identity = judging.run_identity(options.model, options.rubric, options.max_tokens, options.temperature)
    with Job(db, "judge", params, progress) as job:
        with db.writing() as con:
            run_id, existed = quality_rows.ensure_run(
                con,
                "judge",
                identity,
                options.model,
                {**settings, "rubric": options.rubric},
                job.id,
                distill.public_url(base_url),
                local,
            )
            judge_rows.queue(con, run_id)
            counts = judge_rows.counts(con, run_id)
        report = JudgeReport(
            job.id,
            run_id,
            options.model,
            "resumed" if existed else "new",
            pairs=sum(counts.values()),
            already=counts["done"],
        )
        if report.pairs == 0:
            raise UserError("no pairs to judge: `curator ingest` some first")
        if report.already == report.pairs:
            report.status = "nothing to do"
        started = time.monotonic()
        try:
            _judge_pairs(db, job, client, run_id, options, local, prices, report, started)
        finally:
            client.close()
            report.seconds = time.monotonic() - started
            with db.reading() as con:
                report.pending = judge_rows.counts(con, run_id)["pending"]
                score_counts = judge_rows.score_counts(con, run_id)
            report.histogram = judging.histogram(score_counts)
            report.mean_score = judging.mean_score(report.histogram)
            job.counts = _job_counts(report)
    return report


def _job_counts(report: JudgeReport) -> dict:
    return {
        k: getattr(report, k)
        for k in (
            "pairs",
            "already",
            "judged",
            "failed",
            "pending",
            "errors",
            "prompt_tokens",
            "completion_tokens",
            "cost",
            "mean_score",
        )
    }


def _judge_pairs(
    db: Database,
    job: Job,
    client,
    run_id: int,
    options: JudgeOptions,
    local: bool,
    prices: dict,
    report: JudgeReport,
    started: float,
) -> None:
    todo = report.pairs - report.already
    total = todo if options.limit is None else min(todo, options.limit)

    def store(con, batch: list[Outcome[PairText]]) -> None:
        judge_rows.record(con, run_id, _results(batch, options.model))
        _add_to_report(report, batch, local, prices)
        job.report(
            report.judged + report.failed,
            total,
            distill.progress_message(
                report.judged,
                report.failed,
                report.errors,
                report.completion_tokens,
                time.monotonic() - started,
                report.cost,
            ),
            con,
        )

    def todo(after: int | None, limit: int) -> list[PairText]:
        with db.reading() as con:
            return judge_rows.todo(con, run_id, after, limit)

    pairs = request_pool.keyset_pages(todo, lambda pair: pair.pair_id, PAGE)
    request_pool.ask_all(
        db,
        client,
        itertools.islice(pairs, total),
        lambda pair: judging.request_messages(options.rubric, pair),
        options,
        store,
        validate=lambda answer: judging.parse_verdict(answer.response),
    )


def _results(outcomes: list[Outcome[PairText]], requested_model: str) -> pa.Table:
    return pa.Table.from_pydict(
        {
            "pair_id": [o.item.pair_id for o in outcomes],
            "status": ["done" if o.answer else "failed" for o in outcomes],
            "attempts": [o.tries for o in outcomes],
            "score": [o.verdict.score if o.answer else None for o in outcomes],
            "reason": [o.verdict.reason if o.answer else None for o in outcomes],
            "error": [o.error for o in outcomes],
            # A pair given up on may still have cost tokens (verdicts that could not be read):
            # they are the requested model's, as no answer said otherwise.
            "model": [
                o.answer.model if o.answer else requested_model if o.completion_tokens else None for o in outcomes
            ],
            "prompt_tokens": [o.prompt_tokens for o in outcomes],
            "completion_tokens": [o.completion_tokens for o in outcomes],
        },
        schema=judge_rows.RESULT_SCHEMA,
    )


def _add_to_report(report: JudgeReport, outcomes: list[Outcome[PairText]], local: bool, prices: dict) -> None:
    for o in outcomes:
        report.errors += o.errors
        report.judged += o.answer is not None
        report.failed += o.answer is None
        report.prompt_tokens += o.prompt_tokens
        report.completion_tokens += o.completion_tokens
        if o.prompt_tokens or o.completion_tokens:
            model = o.answer.model if o.answer else report.model
            cost = distill.request_cost(model, local, o.prompt_tokens, o.completion_tokens, prices)
            report.cost = None if cost is None or report.cost is None else report.cost + cost
