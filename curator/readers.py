"""Streaming readers: any supported file as batches of parsed records, in bounded memory.

Supported: .jsonl/.ndjson, .json (an array, or JSON Lines), .csv, .parquet, each optionally
compressed as .gz or .zst. A record that cannot be read (invalid JSON, invalid UTF-8, over the
size limit, ragged CSV row) is returned as an error with its line and raw text instead of
stopping the file. Lines are 1-based physical lines for line-oriented files and 1-based record
indexes for JSON arrays and Parquet.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import io
import json
import os
import re
import shutil
import sys
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import orjson

CHUNK_BYTES = 8 << 20
RAW_LIMIT = 64 * 1024
DEFAULT_MAX_RECORD_BYTES = 1 << 20
# A batch ends at whichever comes first. Batches are the unit of commit, so the resume
# granularity after a crash, and they bound memory. Measured on 500k ~1 KB pairs: 64 MiB
# batches took 13.7 s, 1.35 GB peak RSS and a 665 MB database; 128 MiB batches 14.4 s,
# 1.85 GB and 1.18 GB (DuckDB writes batches above a row group straight to new blocks,
# leaving the file larger); 20k-record batches 2.5x longer (a commit per batch through the WAL).
# Measure again with bench/ingest.py (docs/benchmarks.md, "Ingest").
BATCH_RECORDS = 131_072
BATCH_BYTES = 64 << 20
CONTAINERS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "json", ".csv": "csv", ".parquet": "parquet"}
COMPRESSIONS = {".gz": "gz", ".zst": "zst", ".zstd": "zst"}


class UnsupportedFile(ValueError):
    pass


@dataclass
class Batch:
    """Records read since the previous batch, and where reading stands after them."""

    lines: list[int] = field(default_factory=list)
    values: list[object] = field(default_factory=list)
    raws: list[bytes | str | None] = field(default_factory=list)  # None: serialize the value
    errors: list[tuple[int, str, str]] = field(default_factory=list)  # (line, reason, raw text)
    size: int = 0  # bytes of raw text in the batch
    line: int = 0  # lines / records consumed so far: resume after this
    offset: int = 0  # byte offset in the decompressed stream after them (line files)
    progress: int = 0  # bytes of the file on disk consumed, for progress bars

    def __len__(self) -> int:
        return len(self.lines) + len(self.errors)

    def full(self, records: int, size: int) -> bool:
        return len(self) >= records or self.size >= size

    def add(self, line: int, value: object, raw: bytes | str, problem: str | None) -> None:
        """A record, or its reject when there is a problem with it."""
        self.size += len(raw)
        if problem is None:
            self.lines.append(line)
            self.values.append(value)
            self.raws.append(raw)
        else:
            self.errors.append((line, problem, raw_text(raw)))


def file_kind(path: Path) -> tuple[str, str | None]:
    """(container, compression) from the file name, e.g. ('jsonl', 'zst') for x.jsonl.zst."""
    suffixes = [s.lower() for s in path.suffixes]
    compression = COMPRESSIONS.get(suffixes[-1]) if suffixes else None
    if compression:
        suffixes = suffixes[:-1]
    container = CONTAINERS.get(suffixes[-1]) if suffixes else None
    if container is None:
        raise UnsupportedFile(
            f"{path}: unsupported file type {''.join(path.suffixes) or '(no extension)'}; "
            "expected .jsonl, .ndjson, .json, .csv or .parquet, optionally with .gz or .zst"
        )
    return container, compression


def file_sha256(path: Path) -> str:
    with open(path, "rb") as f:
        return hashlib.file_digest(f, "sha256").hexdigest()


def raw_text(raw: bytes | str) -> str:
    """A record's raw text as stored with a reject: at most 64 KiB, invalid bytes replaced."""
    if isinstance(raw, bytes):
        return raw[:RAW_LIMIT].decode("utf-8", "replace")
    return raw.encode("utf-8", "surrogateescape")[:RAW_LIMIT].decode("utf-8", "replace")


def _too_large(size: int, limit: int) -> str:
    return f"record is {size:,} bytes, over the {limit:,}-byte limit (--max-record-bytes)"


def _open_stream(raw_file: io.BufferedReader, compression: str | None) -> io.BufferedReader:
    """The decompressed bytes, buffered so that the first bytes can be peeked at."""
    if compression == "gz":
        return io.BufferedReader(gzip.GzipFile(fileobj=raw_file, mode="rb"), CHUNK_BYTES)
    if compression == "zst":
        import zstandard

        reader = zstandard.ZstdDecompressor().stream_reader(raw_file, read_size=1 << 20)
        return io.BufferedReader(reader, CHUNK_BYTES)
    return raw_file


def _skip_bytes(stream: BinaryIO, n: int) -> None:
    if n and stream.seekable():
        stream.seek(n)
        return
    while n > 0:
        got = len(stream.read(min(n, CHUNK_BYTES)))
        if not got:
            break
        n -= got


def read_batches(
    path: Path,
    *,
    start_line: int = 0,
    start_offset: int = 0,
    max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
    batch_records: int = BATCH_RECORDS,
    batch_bytes: int = BATCH_BYTES,
) -> Iterator[Batch]:
    """Yield batches of records from path, resuming after start_line (and start_offset for
    line files, where it is the byte offset just after line start_line)."""
    container, compression = file_kind(path)
    with open(path, "rb") as raw_file:
        if container == "parquet":
            yield from _parquet(raw_file, compression, start_line, min(batch_records, 65_536))
            return
        stream = _open_stream(raw_file, compression)
        if container == "csv":
            yield from _csv(stream, raw_file, start_line, max_record_bytes, batch_records, batch_bytes)
        elif container == "json" and _first_byte(stream) == b"[":
            yield from _json_array(stream, raw_file, start_line, max_record_bytes, batch_records, batch_bytes)
        else:  # .jsonl, and .json files that hold JSON Lines
            _skip_bytes(stream, start_offset)
            yield from _jsonl(stream, raw_file, start_line, start_offset, max_record_bytes, batch_records, batch_bytes)


def _first_byte(stream: io.BufferedReader) -> bytes:
    """The first non-blank byte (after a UTF-8 BOM), without consuming anything."""
    return stream.peek(4096).lstrip(b"\xef\xbb\xbf \t\r\n")[:1]


def _json_error(raw: bytes, err: orjson.JSONDecodeError) -> str:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as bad:
        return f"invalid UTF-8 (byte {bad.start + 1} of the line)"
    return f"invalid JSON at column {err.colno}: {err.msg}"


def _jsonl(
    stream: BinaryIO, raw_file: BinaryIO, line: int, offset: int, limit: int, batch_records: int, batch_bytes: int
) -> Iterator[Batch]:
    loads, JSONDecodeError = orjson.loads, orjson.JSONDecodeError
    batch = Batch()
    batch_start = offset
    tail = b""
    first = offset == 0
    while True:
        chunk = stream.read(CHUNK_BYTES)
        if first and chunk.startswith(b"\xef\xbb\xbf"):
            # A BOM is not JSON whitespace; skipping it keeps line 1 readable and offsets true.
            chunk, offset = chunk[3:], 3
        first = False
        eof = not chunk
        if eof:
            if not tail:
                break
            pieces, tail = [tail], b""
        else:
            pieces = (tail + chunk).split(b"\n")
            tail = pieces.pop()
        for raw in pieces:
            line += 1
            offset += len(raw) + (0 if eof else 1)
            if len(raw) > limit:
                batch.errors.append((line, _too_large(len(raw), limit), raw_text(raw)))
                continue
            try:
                value = loads(raw)
            except JSONDecodeError as err:
                if raw.strip():  # a blank line is no record
                    batch.errors.append((line, _json_error(raw, err), raw_text(raw)))
                continue
            batch.lines.append(line)
            batch.values.append(value)
            batch.raws.append(raw)
            if len(batch) >= batch_records or offset - batch_start >= batch_bytes:
                batch.line, batch.offset, batch.progress = line, offset, raw_file.tell()
                batch.size = offset - batch_start
                yield batch
                batch, batch_start = Batch(), offset
        if eof:
            break
    batch.line, batch.offset, batch.progress = line, offset, raw_file.tell()
    batch.size = offset - batch_start
    yield batch


_WHITESPACE = re.compile(r"[ \t\n\r]*")


def _json_array(
    stream: BinaryIO, raw_file: BinaryIO, skip: int, limit: int, batch_records: int, batch_bytes: int
) -> Iterator[Batch]:
    """Elements of a top-level JSON array, parsed one at a time with the C scanner."""
    # surrogateescape keeps invalid UTF-8 visible (as lone surrogates) so that the element
    # holding it is rejected with its reason instead of failing the whole file.
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape")
    decode = json.JSONDecoder().raw_decode
    buf, pos, eof = "", 0, False
    index = 0
    batch = Batch()

    def fill(need: int) -> None:
        nonlocal buf, pos, eof
        if eof or len(buf) - pos >= need:
            return
        buf = buf[pos:]
        pos = 0
        while not eof and len(buf) < need:
            more = text.read(CHUNK_BYTES)
            eof = not more
            buf += more

    def skip_ws() -> None:
        nonlocal pos
        while True:
            pos = _WHITESPACE.match(buf, pos).end()
            if pos < len(buf) or eof:
                return
            fill(CHUNK_BYTES)

    fill(CHUNK_BYTES)
    skip_ws()
    pos += 1  # the opening '['
    while True:
        fill(CHUNK_BYTES)
        skip_ws()
        if pos >= len(buf) or buf[pos] == "]":
            break
        try:
            value, end = decode(buf, pos)
        except json.JSONDecodeError as err:
            # Either the element runs past the buffer (read more and retry) or it is broken.
            if not eof and len(buf) - pos < 2 * limit + CHUNK_BYTES:
                fill(len(buf) - pos + CHUNK_BYTES)
                continue
            index += 1
            rest = buf[pos:]
            reason = (
                f"invalid JSON in array element {index} at character {err.pos - pos + 1} "
                f"of the element: {err.msg}; the rest of the array could not be read"
            )
            batch.errors.append((index, reason, raw_text(rest)))
            break
        index += 1
        raw = buf[pos:end]
        pos = end
        skip_ws()
        if pos < len(buf) and buf[pos] == ",":
            pos += 1
        if index <= skip:
            continue
        batch.add(index, value, raw, _text_problem(raw, limit))
        if batch.full(batch_records, batch_bytes):
            batch.line, batch.progress = index, raw_file.tell()
            yield batch
            batch = Batch()
    batch.line, batch.progress = index, raw_file.tell()
    yield batch


def _text_problem(raw: str, limit: int) -> str | None:
    """Why a record decoded as text (array element, CSV row) cannot be taken, else None."""
    if len(raw) * 4 > limit:  # a str of n characters is at most 4n bytes: skip encoding most
        size = len(raw.encode("utf-8", "surrogateescape"))
        if size > limit:
            return _too_large(size, limit)
    try:
        raw.encode("utf-8")
    except UnicodeEncodeError:  # lone surrogates: undecodable bytes kept by surrogateescape
        return "invalid UTF-8 in the record"
    return None


def _csv(
    stream: BinaryIO, raw_file: BinaryIO, skip: int, limit: int, batch_records: int, batch_bytes: int
) -> Iterator[Batch]:
    """Rows as {header: value} dicts; a record's line is the physical line it starts on."""
    csv.field_size_limit(sys.maxsize)  # size is checked per record, with a reason
    text = io.TextIOWrapper(stream, encoding="utf-8-sig", errors="surrogateescape", newline="")
    reader = csv.reader(text)
    header = next(reader, None)
    batch = Batch()
    if header is None:
        yield batch
        return
    records = 0
    start = reader.line_num + 1
    for row in reader:
        records += 1
        line, start = start, reader.line_num + 1
        if records <= skip or not row:
            continue
        raw = ",".join(row)
        problem = (
            f"row has {len(row)} fields, the header has {len(header)}"
            if len(row) != len(header)
            else _text_problem(raw, limit)
        )
        batch.add(line, dict(zip(header, row)), raw, problem)
        if batch.full(batch_records, batch_bytes):
            batch.line, batch.progress = records, raw_file.tell()
            yield batch
            batch = Batch()
    batch.line, batch.progress = records, raw_file.tell()
    yield batch


def _parquet(raw_file: BinaryIO, compression: str | None, skip: int, batch_records: int) -> Iterator[Batch]:
    import pyarrow.parquet as pq

    with tempfile.TemporaryFile() as spill:
        source: BinaryIO = raw_file
        if compression:  # Parquet needs random access: decompress to a temporary file first
            shutil.copyfileobj(_open_stream(raw_file, compression), spill, CHUNK_BYTES)
            spill.seek(0)
            source = spill
        parquet = pq.ParquetFile(source)
        rows = max(parquet.metadata.num_rows, 1)
        size = os.fstat(raw_file.fileno()).st_size
        index = 0
        for record_batch in parquet.iter_batches(batch_size=batch_records):
            batch = Batch()
            for value in record_batch.to_pylist():
                index += 1
                if index <= skip:
                    continue
                batch.lines.append(index)
                batch.values.append(value)
                batch.raws.append(None)
            batch.line = index
            batch.progress = size * index // rows
            yield batch
