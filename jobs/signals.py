"""The signals job: quality signals for every pair that has none under the given thresholds.

Each run is recorded (signal_runs: its thresholds as JSON and its job). Pairs already
computed under identical thresholds are skipped, so a rerun only does new pairs, and a
changed threshold, tokenizer or rule version recomputes everything. Batches are committed
as they finish: after kill -9 a rerun continues where the last committed batch ended. The
database is open only to read a batch's pairs and to commit its signals.

Per batch, the chat template is rendered in Python, then the Rust tokenizer counts tokens
on a worker thread (it releases the GIL, and uses every core) while the main thread runs
the text rules and language identification.
"""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

from curator import chat_tokens, language
from curator.signals import SignalParams, text_signals, token_signals
from jobs.runner import Job, Progress, no_progress
from storage import signals as signal_rows
from storage.db import Database

BATCH_SIZE = 10_000  # pairs per committed batch: the resume granularity


@dataclass
class SignalReport:
    job_id: int
    run_id: int
    params: SignalParams
    tokenizer: str  # the tokenizer actually used, as named by chat_tokens
    computed: int  # pairs computed by this run
    already: int  # pairs that already had signals under the same thresholds
    seconds: float
    summary: dict  # storage.signals.summary: counts over the pairs not deleted

    @property
    def pairs_per_s(self) -> float:
        return self.computed / self.seconds if self.seconds else 0.0

    def as_dict(self) -> dict:
        return {
            "job_id": self.job_id,
            "run_id": self.run_id,
            "params": asdict(self.params),
            "tokenizer": self.tokenizer,
            "computed": self.computed,
            "already": self.already,
            "seconds": round(self.seconds, 3),
            "pairs_per_s": round(self.pairs_per_s, 1),
            **self.summary,
        }


def compute_signals(
    db: Database,
    params: SignalParams | None = None,
    progress: Progress | None = None,
    *,
    batch_size: int = BATCH_SIZE,
) -> SignalReport:
    """Quality signals for every pair without them under `params` (any change of params
    recomputes all), in batches committed as they finish."""
    params = params or SignalParams()
    key = params.to_json()
    with Job(db, "signals", asdict(params), progress or no_progress) as job:
        tokenizer = chat_tokens.load(params.tokenizer)
        with db.writing() as con:
            signal_rows.ensure_columns(con)  # a flag registered since the last run gets its column
            run_id = signal_rows.start_run(con, job.id, key)
        with db.reading() as con:
            pending = signal_rows.pending_pair_ids(con, key)
            already = signal_rows.pair_count(con) - len(pending)
        started = time.perf_counter()
        done = 0
        with ThreadPoolExecutor(max_workers=1, thread_name_prefix="tokens") as pool:
            for start in range(0, len(pending), batch_size):
                ids = pending[start : start + batch_size]
                with db.reading() as con:
                    inputs = signal_rows.pair_inputs(con, ids)
                columns = _batch_signals(inputs, params, tokenizer, pool)
                with db.writing() as con:
                    signal_rows.write(con, run_id, ids, columns)
                    done += len(ids)
                    job.counts = {"computed": done, "already": already}
                    job.report(done, len(pending), f"signals: {done:,}/{len(pending):,} pairs", con)
        seconds = time.perf_counter() - started
        with db.reading() as con:
            summary = signal_rows.summary(con, key)
        job.counts = {"computed": done, "already": already, **summary["counts"]}
        return SignalReport(job.id, run_id, params, tokenizer.name, done, already, seconds, summary)


def _batch_signals(
    table, params: SignalParams, tokenizer: chat_tokens.ChatTokenizer, pool: ThreadPoolExecutor
) -> dict[str, list]:
    prompts = table.column("prompt").to_pylist()
    responses = table.column("response").to_pylist()
    messages = table.column("messages").to_pylist()
    finish_reasons = table.column("finish_reason").to_pylist()
    rendered = tokenizer.render_all(
        [chat_tokens.conversation(p, r, m) for p, r, m in zip(prompts, responses, messages)]
    )
    counting = pool.submit(tokenizer.count_rendered, *rendered)
    columns = text_signals(prompts, responses, finish_reasons, params)
    columns["lang"] = language.identify(responses, params.lang_min_letters, params.lang_min_confidence)
    columns["n_tokens"] = [int(n) if n >= 0 else None for n in counting.result()]  # -1: template refused it
    columns.update(token_signals(prompts, responses, finish_reasons, columns["n_words"], columns["n_tokens"], params))
    return columns
