"""curator.readers: every container streamed, resumed and kept honest about lines."""

from __future__ import annotations

import csv
import gzip
import io
import json

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

from curator import readers
from tests.conftest import DATA, needs_data


def read_all(path, **kwargs):
    lines, values, errors, last = [], [], [], None
    for batch in readers.read_batches(path, **kwargs):
        lines += batch.lines
        values += batch.values
        errors += batch.errors
        last = batch
    return lines, values, errors, last


RECORDS = [{"prompt": f"question {i}", "response": f"answer {i} " + "é" * (i % 7)} for i in range(50)]


def write(path, records=RECORDS):
    """Write records in the container and compression that path's name says."""
    container, compression = readers.file_kind(path)
    if container == "parquet":
        buffer = io.BytesIO()
        pq.write_table(pa.Table.from_pylist(records), buffer)
        data = buffer.getvalue()
    elif container == "csv":
        buffer = io.StringIO()
        writer = csv.DictWriter(buffer, list(records[0]))
        writer.writeheader()
        writer.writerows(records)
        data = buffer.getvalue().encode()
    elif container == "json":
        data = json.dumps(records, indent=2).encode()
    else:
        data = b"".join(orjson.dumps(r) + b"\n" for r in records)
    if compression == "gz":
        data = gzip.compress(data)
    elif compression == "zst":
        data = zstandard.ZstdCompressor().compress(data)
    path.write_bytes(data)


NAMES = [
    "r.jsonl",
    "r.jsonl.gz",
    "r.jsonl.zst",
    "r.json",
    "r.json.gz",
    "r.csv",
    "r.csv.zst",
    "r.parquet",
    "r.parquet.gz",
]


@pytest.mark.parametrize("name", NAMES)
def test_each_container_reads_every_record_and_resumes(tmp_path, name, monkeypatch):
    monkeypatch.setattr(readers, "CHUNK_BYTES", 97)  # force records across chunk boundaries
    path = tmp_path / name
    write(path)
    lines, values, errors, _ = read_all(path, batch_records=7)
    assert values == RECORDS and errors == []
    # Resume after the batch that ended at record 21 (checkpoint = that batch's line/offset).
    checkpoint = next(b for b in readers.read_batches(path, batch_records=7) if b.line >= 21)
    rest_lines, rest, _, _ = read_all(path, start_line=checkpoint.line, start_offset=checkpoint.offset)
    assert rest == RECORDS[len(RECORDS) - len(rest) :] and len(rest) == len(RECORDS) - 21
    assert rest_lines == lines[21:]


def test_line_numbers_are_physical(tmp_path):
    path = tmp_path / "crlf.jsonl"
    path.write_bytes(b'\xef\xbb\xbf{"a": 1}\r\n\r\n{"a": 2}\r\n   \n{"a": 3}')
    lines, values, errors, last = read_all(path)
    assert (lines, values, errors) == ([1, 3, 5], [{"a": 1}, {"a": 2}, {"a": 3}], [])
    assert last.offset == path.stat().st_size


def test_csv_lines_count_multi_line_fields(tmp_path):
    path = tmp_path / "m.csv"
    path.write_text('prompt,response\n"two\nlines",ok\nthird,row\nragged\n', newline="")
    lines, values, errors, _ = read_all(path)
    assert lines == [2, 4]
    assert values[0] == {"prompt": "two\nlines", "response": "ok"}
    assert [(line, reason) for line, reason, _ in errors] == [(5, "row has 1 fields, the header has 2")]


def test_a_broken_json_array_keeps_what_came_before(tmp_path):
    path = tmp_path / "broken.json"
    path.write_text('[{"prompt": "a b", "response": "c"}, {"prompt": oops}, {"prompt": "x"}]')
    lines, values, errors, _ = read_all(path)
    assert values == [{"prompt": "a b", "response": "c"}]
    ((line, reason, raw),) = errors
    assert line == 2 and "the rest of the array could not be read" in reason
    assert raw.startswith('{"prompt": oops}')


def test_json_array_invalid_utf8_rejects_only_that_record(tmp_path):
    path = tmp_path / "bad.json"
    path.write_bytes(b'[{"p": "ok"}, {"p": "caf\xe9"}, {"p": "fine"}]')
    lines, values, errors, _ = read_all(path)
    assert values == [{"p": "ok"}, {"p": "fine"}] and lines == [1, 3]
    assert [(line, r) for line, r, _ in errors] == [(2, "invalid UTF-8 in the record")]


def test_unsupported_names_are_refused(tmp_path):
    with pytest.raises(readers.UnsupportedFile, match="unsupported file type .txt"):
        readers.file_kind(tmp_path / "x.txt")
    assert readers.file_kind(tmp_path / "X.JSONL.ZST") == ("jsonl", "zst")


@needs_data
def test_real_json_array_parses_like_json_load(monkeypatch):
    monkeypatch.setattr(readers, "CHUNK_BYTES", 4096)
    path = DATA / "alpaca_5000.json"
    _, values, errors, _ = read_all(path, batch_records=999)
    assert values == json.loads(path.read_text()) and errors == []
