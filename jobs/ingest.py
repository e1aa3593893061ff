"""The ingest job: files in, pairs and rejects out, exactly once even across kill -9.

Each batch of records is committed in one transaction together with the file's checkpoint
(lines consumed, byte offset), so a crash loses at most the uncommitted batch and a rerun of
the same command resumes after the last committed one. Files are identified by content
(sha256): ingesting the same bytes again, under any name, is a no-op.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import orjson
import pyarrow as pa

from curator import formats, readers
from curator.errors import UserError
from jobs.runner import Job, Progress, no_progress, prefetch
from storage import files as file_rows
from storage import pairs as pair_rows
from storage import rejects as reject_rows
from storage.db import Database

# Seconds ingest keeps the file open across batches before it closes it for readers (a page of
# the app waits up to 10 s). Each close checkpoints what was written, so closing after every
# batch doubled the time of a 1M-pair ingest; docs/benchmarks.md "Ingest" has the figures.
HOLD_SECONDS = 4.0


@dataclass(frozen=True)
class IngestOptions:
    source: str | None = None  # overrides every record's own source
    format: str = "auto"  # auto, or one of curator.formats.FORMATS
    prompt_field: str | None = None  # with response_field: any flat records, these two keys
    response_field: str | None = None
    max_record_bytes: int = readers.DEFAULT_MAX_RECORD_BYTES

    def __post_init__(self):
        if (self.prompt_field is None) != (self.response_field is None):
            raise UserError("--prompt-field and --response-field go together: give both or neither")
        if self.format != "auto" and self.format not in formats.FORMATS:
            raise UserError(f"unknown format {self.format!r}; choose auto or one of {', '.join(formats.FORMATS)}")

    def reading(self) -> dict:
        """The options that decide what rows a file yields: a resumed file must reuse them."""
        return asdict(self)


@dataclass
class FileReport:
    path: str
    status: str  # ingested | resumed | already ingested | failed
    format: str | None = None
    pairs: int = 0
    rejects: int = 0
    duplicates: int = 0
    note: str | None = None  # why it failed, or where it was already ingested from


@dataclass
class IngestReport:
    job_id: int
    files: list[FileReport] = field(default_factory=list)

    def total(self, name: str) -> int:
        return sum(getattr(f, name) for f in self.files)


def ingest(
    db: Database,
    paths: list[str | Path],
    options: IngestOptions,
    progress: Progress = no_progress,
    batch_records: int = readers.BATCH_RECORDS,
) -> IngestReport:
    """Ingest every file of `paths` (a file already ingested with the same content is skipped):
    pairs in batches of `batch_records`, rejected records kept with their reason, each file
    committed as it goes and resumed from its last committed line after a crash."""
    paths = [Path(p) for p in paths]
    params = {"paths": [str(p) for p in paths], **options.reading()}
    with Job(db, "ingest", params, progress) as job:
        report = IngestReport(job.id)
        total_bytes = sum(p.stat().st_size for p in paths if p.is_file())
        done_bytes = 0
        for path in paths:
            file_report = _ingest_file(db, job, path, options, batch_records, done_bytes, total_bytes)
            report.files.append(file_report)
            done_bytes += path.stat().st_size if path.is_file() else 0
            job.counts = {
                "files": len(report.files),
                "pairs": report.total("pairs"),
                "rejects": report.total("rejects"),
                "duplicates": report.total("duplicates"),
                "failed_files": sum(f.status == "failed" for f in report.files),
            }
        job.report(total_bytes, total_bytes, "done")
    return report


def _ingest_file(
    db: Database, job: Job, path: Path, options: IngestOptions, batch_records: int, done_bytes: int, total_bytes: int
) -> FileReport:
    shown = str(path)
    if not path.is_file():
        return FileReport(shown, "failed", note="no such file")
    try:
        readers.file_kind(path)
    except readers.UnsupportedFile as err:
        return FileReport(shown, "failed", note=str(err))
    sha = readers.file_sha256(path)
    with db.writing() as con:
        row = file_rows.find(con, sha)
        if row is not None and row.status == "done":
            note = f"same content as {row.path}, ingested by job {row.job_id}"
            return FileReport(shown, "already ingested", row.format, note=note)
        if row is None:
            forced = None if options.format == "auto" else options.format
            row = file_rows.start(con, sha, shown, path.stat().st_size, options.reading(), forced, job.id)
            status = "ingested"
        else:
            if row.options != options.reading():
                return FileReport(
                    shown,
                    "failed",
                    note=(
                        f"this file was partly ingested by job {row.job_id} with other options "
                        f"({_describe(row.options)}); rerun with those options to resume it"
                    ),
                )
            file_rows.take_over(con, row.id, job.id, shown)
            status = "resumed"
    report = FileReport(
        shown, status, row.format, note=f"resumed after line {row.resume_line:,}" if status == "resumed" else None
    )
    args = (path, row.resume_line, row.resume_offset, options, row.format, path.name.split(".")[0], batch_records)
    # Reading and converting batch k+1 (Python) overlaps inserting batch k (DuckDB, which
    # releases the GIL). A child process instead of a thread was measured slower: pickling
    # the Arrow batches across costs more than the GIL contention it avoids.
    with db.batches(HOLD_SECONDS) as writer:
        for batch in prefetch(converted_batches(*args)):
            with writer.batch() as con:
                pair_rows.insert(con, sha, row.id, job.id, batch.pairs)
                reject_rows.insert(con, job.id, row.id, shown, batch.reject_lines, batch.reasons, batch.raws)
                file_rows.checkpoint(
                    con, row.id, batch.format, batch.line, batch.offset, batch.pairs.num_rows, len(batch.reject_lines)
                )
                report.pairs += batch.pairs.num_rows
                report.rejects += len(batch.reject_lines)
                report.format = batch.format
                job.report(done_bytes + batch.progress, total_bytes, f"{path.name}: line {batch.line:,}", con)
    with db.writing() as con:
        report.duplicates = pair_rows.file_duplicates(con, row.id)
        file_rows.finish(con, row.id, report.duplicates)
    return report


@dataclass
class ConvertedBatch:
    """One batch as the writing side needs it: pairs, rejects and the checkpoint after them."""

    pairs: pa.Table
    reject_lines: list[int]
    reasons: list[str]
    raws: list[str]
    format: str | None
    line: int
    offset: int
    progress: int


def converted_batches(
    path: Path,
    start_line: int,
    start_offset: int,
    options: IngestOptions,
    fmt: str | None,
    default_source: str,
    batch_records: int,
) -> Iterator[ConvertedBatch]:
    """Read one file from a checkpoint on and convert it, batch by batch."""
    converter = _Converter(options, fmt, default_source)
    for batch in readers.read_batches(
        path,
        start_line=start_line,
        start_offset=start_offset,
        max_record_bytes=options.max_record_bytes,
        batch_records=batch_records,
    ):
        table, (lines, reasons, raws) = converter.convert(batch)
        converted = ConvertedBatch(
            table, lines, reasons, raws, converter.format, batch.line, batch.offset, batch.progress
        )
        del batch  # its parsed records are most of ingest's memory: drop them before waiting
        yield converted


def _describe(options: dict) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items() if v not in (None, "auto"))


class _Converter:
    """Parsed records -> an Arrow batch of pairs plus reject lists. The per-record hot path."""

    def __init__(self, options: IngestOptions, fmt: str | None, default_source: str):
        self.options = options
        self.format = "fields" if options.prompt_field else fmt
        self.default_source = default_source

    def convert(self, batch: readers.Batch) -> tuple[pa.Table, tuple[list, list, list]]:
        lines, indexes, prompts, responses, messages, sources = [], [], [], [], [], []
        models, finish_reasons = [], []
        reject_lines = [line for line, _, _ in batch.errors]
        reasons = [reason for _, reason, _ in batch.errors]
        raws = [raw for _, _, raw in batch.errors]
        record_pairs, RecordError = formats.record_pairs, formats.RecordError
        source_override, fallback = self.options.source, self.default_source
        pf, rf = self.options.prompt_field, self.options.response_field
        for line, value, raw in zip(batch.lines, batch.values, batch.raws):
            try:
                if self.format is None:
                    self.format = self._detect(value)
                # A non-object leaves the format undetected; record_pairs rejects it, with the
                # reason worded by the format layer, whatever format it is handed.
                found = record_pairs(value, self.format or "gpt4all", prompt_field=pf, response_field=rf)
            except RecordError as err:
                reject_lines.append(line)
                reasons.append(err.reason)
                raws.append(readers.raw_text(raw if raw is not None else _serialize(value)))
                continue
            for index, pair in enumerate(found):
                lines.append(line)
                indexes.append(index)
                prompts.append(pair.prompt)
                responses.append(pair.response)
                messages.append(orjson.dumps(pair.messages).decode() if pair.messages else None)
                sources.append(source_override or pair.source or fallback)
                models.append(pair.model)
                finish_reasons.append(pair.finish_reason)
        table = pa.Table.from_arrays(
            [
                pa.array(lines, pa.int64()),
                pa.array(indexes, pa.int32()),
                pa.array(prompts, pa.string()),
                pa.array(responses, pa.string()),
                pa.array(messages, pa.string()),
                pa.array(sources, pa.string()),
                pa.array(models, pa.string()),
                pa.array(finish_reasons, pa.string()),
            ],
            schema=pair_rows.BATCH_SCHEMA,
        )
        return table, (reject_lines, reasons, raws)

    @staticmethod
    def _detect(value: object) -> str | None:
        fmt = formats.detect_format(value)
        if fmt is None and isinstance(value, dict):
            keys = ", ".join(sorted(map(str, value))[:8])
            raise formats.RecordError(
                f"no known format has these keys ({keys}); use --format, or --prompt-field and --response-field"
            )
        return fmt


def _serialize(value: object) -> bytes:
    return orjson.dumps(value, default=str)
