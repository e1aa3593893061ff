"""`curator ingest` end to end on real files: formats, containers, rejects, re-ingest, stats."""

from __future__ import annotations

import csv
import gzip
import json
import shutil

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import zstandard

import storage
from tests.conftest import DATA, needs_data, query

# (file under ../shared/data, format detected, pairs, rejects). Pair counts follow each
# format's rule (tests/test_formats.py checks the rules record by record); rejects are:
# alpaca_5000 - 2 empty outputs; hh - 4 transcripts with an empty final Assistant turn;
# oasst2 - 432 trees with no answer yet plus 1 deleted root; code_alpaca - 2 empty outputs.
REAL_FILES = [
    ("alpaca_5000.json", "alpaca", 4998, 2),
    ("codegen-instruct.json", "alpaca", 4535, 0),
    ("code_alpaca_2k.json", "alpaca", 2015, 2),
    ("dummy_conversation.json", "sharegpt", 500, 0),
    ("en_100_tree.jsonl", "oasst", 546, 0),
    ("en_100_message.jsonl", "oasst", 546, 0),
    ("oasst2_filtered.jsonl", "oasst", 522, 433),
    ("hh-rlhf_harmless-base/test.jsonl.gz", "hh", 2308, 4),
    ("t0_train_50k_data_per_template/imdb_Reviewer_Enjoyment.jsonl", "gpt4all", 200, 0),
    ("alpaca_eval_results/guanaco-7b/model_outputs.json", "alpaca", 805, 0),
]


@needs_data
@pytest.mark.parametrize("name,fmt,n_pairs,n_rejects", REAL_FILES)
def test_real_files_in_every_format(curator, name, fmt, n_pairs, n_rejects):
    out = curator("ingest", DATA / name)
    assert f"format {fmt}" in out.stdout
    stats = curator.json("stats")
    assert (stats["pairs"], stats["rejects"]) == (n_pairs, n_rejects)
    assert len(curator.json("rejects")) == n_rejects
    # Missing source falls back to the file's name.
    assert stats["sources"] == {(DATA / name).name.split(".")[0]: n_pairs}


@needs_data
def test_openai_messages_and_multi_turn_rule(curator, tmp_path):
    """No shared file is in OpenAI chat form: convert real ShareGPT conversations to it."""
    roles = {"human": "user", "gpt": "assistant"}
    records = json.loads((DATA / "dummy_conversation.json").read_text())
    path = tmp_path / "chats.jsonl.zst"
    lines = b"".join(
        orjson.dumps({"messages": [{"role": roles[t["from"]], "content": t["value"]} for t in r["conversations"]]})
        + b"\n"
        for r in records
    )
    path.write_bytes(zstandard.ZstdCompressor().compress(lines))
    assert "format openai" in curator("ingest", path).stdout
    assert curator.json("stats")["pairs"] == 500
    # identity_0: Who are you? / I am Vicuna... / Have a nice day! / You too!
    prompt, response, messages = query(curator.db, "SELECT prompt, response, messages FROM pairs_view WHERE line = 1")[
        0
    ]
    assert (prompt, response) == ("Have a nice day!", "You too!")
    assert [m["role"] for m in json.loads(messages)] == ["user", "assistant", "user", "assistant"]


@needs_data
def test_dolly_csv_and_source_precedence(curator, tmp_path):
    """Dolly's shape, built from real Alpaca rows, as CSV; --source overrides everything."""
    rows = [r for r in json.loads((DATA / "alpaca_5000.json").read_text())[:300] if r["output"]]
    path = tmp_path / "dolly.csv"
    with open(path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["instruction", "context", "response", "category"])
        for r in rows:
            writer.writerow([r["instruction"], r["input"], r["output"], "open_qa"])
    assert "format dolly" in curator("ingest", path, "--source", "dolly-test").stdout
    assert curator.json("stats")["sources"] == {"dolly-test": len(rows)}
    with_context = next(r for r in rows if r["input"])
    prompt = query(curator.db, "SELECT prompt FROM pairs_view WHERE response = ?", [with_context["output"]])[0][0]
    assert prompt == with_context["instruction"] + "\n\n" + with_context["input"]


@needs_data
def test_record_source_field_is_used(curator, tmp_path):
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        '{"prompt": "Name a colour.", "response": "Blue.", "source": "unified_chip2"}\n'
        '{"prompt": "Name a fruit.", "response": "Apple."}\n'
    )
    curator("ingest", path)
    assert curator.json("stats")["sources"] == {"unified_chip2": 1, "mixed": 1}


@needs_data
def test_containers_and_compression_give_the_same_pairs(curator, tmp_path):
    """The same real rows as JSON array, JSON Lines .zst, CSV .gz and Parquet."""
    records = json.loads((DATA / "alpaca_5000.json").read_text())
    jsonl = b"".join(orjson.dumps(r) + b"\n" for r in records)
    (tmp_path / "a.jsonl.zst").write_bytes(zstandard.ZstdCompressor().compress(jsonl))
    with gzip.open(tmp_path / "a.csv.gz", "wt", newline="") as f:
        writer = csv.DictWriter(f, ["instruction", "input", "output"])
        writer.writeheader()
        writer.writerows(records)
    pq.write_table(pa.Table.from_pylist(records), tmp_path / "a.parquet")
    shutil.copy(DATA / "alpaca_5000.json", tmp_path / "a.json")
    hashes = {}
    for name in ("a.json", "a.jsonl.zst", "a.csv.gz", "a.parquet"):
        curator("ingest", tmp_path / name, "--source", name)
        hashes[name] = sorted(h for (h,) in query(curator.db, "SELECT pair_hash FROM pairs WHERE source = ?", [name]))
        assert len(hashes[name]) == 4998
    assert len({tuple(h) for h in hashes.values()}) == 1
    # The two empty outputs are rejected in each, at the right record / physical line.
    lines = query(curator.db, "SELECT file, list(line ORDER BY line) FROM rejects GROUP BY file ORDER BY file")
    by_file = {f.rsplit("/", 1)[1]: numbers for f, numbers in lines}
    assert by_file["a.json"] == by_file["a.jsonl.zst"] == by_file["a.parquet"] == [2336, 4659]
    # CSV lines are physical: the header is line 1 and some fields span several lines.
    assert len(by_file["a.csv.gz"]) == 2 and by_file["a.csv.gz"][0] > 2336


BAD_LINES = [
    b'{"prompt": "Hello there", "response": "Hi!"}',  # 1 ok
    b'{"prompt": "broken", ',  # 2 invalid JSON
    b'"just a string"',  # 3 not an object
    b'{"prompt": "Hello"}',  # 4 missing response
    b'{"prompt": 5, "response": "five"}',  # 5 not a string
    b'{"prompt": "Hello", "response": "   "}',  # 6 empty
    b'{"prompt": "caf\xe9 au lait", "response": "ok"}',  # 7 invalid UTF-8
    b'{"prompt": "big", "response": "' + b"x" * 3000 + b'"}',  # 8 too large
    b'{"prompt": {"value": "From a dict"}, "response": {"description": "Described"}}',  # 9 ok
    b'{"prompt": {"x": 1}, "response": "ok"}',  # 10 dict without value
    b'{"prompt": "?", "response": "A question mark."}',  # 11 one character
    b"",  # 12 blank: no record
    b'{"prompt": "Last line", "response": "without a newline"}',  # 13 ok
]


def test_every_reject_reason_with_file_and_line(curator, tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_bytes(b"\n".join(BAD_LINES))
    out = curator("ingest", path, "--max-record-bytes", "2000")
    assert "3 pairs added, 9 rejected" in out.stdout
    assert "9 record(s) rejected" in out.stderr
    rejects = {r["line"]: r for r in curator.json("rejects")}
    expected = {
        2: "invalid JSON",
        3: "not a JSON object",
        4: "missing field 'response'",
        5: "field 'prompt' is a number, not a string",
        6: "field 'response' is empty",
        7: "invalid UTF-8",
        8: "over the 2,000-byte limit",
        10: "without 'value' or 'description'",
        11: "single character",
    }
    assert sorted(rejects) == sorted(expected)
    for line, reason in expected.items():
        assert reason in rejects[line]["reason"], rejects[line]
        assert rejects[line]["file"] == str(path)
    assert rejects[7]["raw"] == '{"prompt": "caf\ufffd au lait", "response": "ok"}'
    assert len(rejects[8]["raw"]) == 3000 + len('{"prompt": "big", "response": ""}')
    kept = query(curator.db, "SELECT line, prompt, response FROM pairs_view ORDER BY line")
    assert kept == [(1, "Hello there", "Hi!"), (9, "From a dict", "Described"), (13, "Last line", "without a newline")]


def test_raw_text_is_cut_at_64_kib(curator, tmp_path):
    path = tmp_path / "huge.jsonl"
    path.write_bytes(b'{"prompt": "a", "x": "' + b"y" * 200_000 + b'"}\n{"prompt": "ok?", "response": "yes"}\n')
    curator("ingest", path)
    (reject,) = curator.json("rejects")
    assert reject["line"] == 1 and len(reject["raw"].encode()) == 64 * 1024


@needs_data
def test_real_malformed_lines(curator):
    """instructionwild_v2 holds prompts only (every record rejected, the command fails) and
    five lines that are not valid JSON."""
    out = curator("ingest", *sorted((DATA / "instructionwild_v2").glob("*.jsonl")), ok=False)
    assert out.exit_code != 0 and "no pairs were accepted" in out.output
    invalid = [
        (r["file"].rsplit("/", 1)[1], r["line"])
        for r in curator.json("rejects")
        if r["reason"].startswith("invalid JSON")
    ]
    assert invalid == [
        ("user_2.jsonl", 134),
        ("user_2.jsonl", 168),
        ("user_3.jsonl", 10),
        ("user_3.jsonl", 121),
        ("user_3.jsonl", 122),
    ]
    assert curator.json("stats")["rejects"] == 873 + 5


@needs_data
def test_field_override_reads_any_flat_records(curator):
    """Self-Instruct predictions: answer the tasks with the human-written `target`, not the
    model's `response`."""
    path = DATA / "self_instruct_human_eval_predictions" / "davinci_predictions.jsonl"
    out = curator("ingest", path, "--prompt-field", "prompt", "--response-field", "target")
    assert "252 pairs" in out.stdout and "format fields" in out.stdout
    first = json.loads(path.open().readline())
    assert query(curator.db, "SELECT response FROM pairs_view WHERE line = 1")[0][0] == first["target"].strip()


@needs_data
def test_reingest_is_a_no_op_even_under_another_name(curator, tmp_path):
    curator("ingest", DATA / "alpaca_5000.json")
    copy = tmp_path / "renamed.json"
    shutil.copy(DATA / "alpaca_5000.json", copy)
    for path in (DATA / "alpaca_5000.json", copy):
        out = curator("ingest", path)
        assert "already ingested, nothing to do" in out.stdout
    assert curator.json("stats")["pairs"] == 4998
    assert [j["status"] for j in curator.json("jobs")] == ["done", "done", "done"]


@needs_data
def test_exact_duplicates_are_counted_not_dropped(curator):
    """new_codealpaca.json repeats codegen-instruct.json's records (README of the data)."""
    curator("ingest", DATA / "codegen-instruct.json")
    out = curator("ingest", DATA / "new_codealpaca.json")
    assert "4,535 pairs, 0 rejected, 4,535 exact duplicates" in out.stdout
    stats = curator.json("stats")
    assert stats["pairs"] == 9070 and stats["exact_duplicates"] == 4535


def test_missing_and_unsupported_files_fail_clearly(curator, tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    good = tmp_path / "good.jsonl"
    good.write_text('{"prompt": "Hi there", "response": "Hello"}\n')
    out = curator("ingest", tmp_path / "nope.jsonl", tmp_path / "notes.txt", good, ok=False)
    assert out.exit_code == 1
    assert "nope.jsonl: not ingested: no such file" in out.stderr
    assert "unsupported file type .txt" in out.stderr
    assert "2 file(s) could not be ingested" in out.stderr
    assert curator.json("stats")["pairs"] == 1  # the good file still went in


def test_stats_jobs_and_views(curator, tmp_path):
    path = tmp_path / "x.jsonl"
    path.write_text('{"prompt": "One?", "response": "1"}\n{"prompt": "Two?", "response": "2"}\n')
    curator("ingest", path, "--source", "numbers")
    assert curator.json("stats") == {
        "pairs": 2,
        "deleted": 0,
        "rejects": 0,
        "exact_duplicates": 0,
        "files": 1,
        "files_unfinished": 0,
        "sources": {"numbers": 2},
    }
    (job,) = curator.json("jobs")
    assert job["kind"] == "ingest" and job["status"] == "done" and job["counts"]["pairs"] == 2
    rows = curator.json("sql", "SELECT id, prompt, response, source, deleted FROM pairs_view ORDER BY prompt")
    assert [(r["prompt"], r["response"], r["source"], r["deleted"]) for r in rows] == [
        ("One?", "1", "numbers", False),
        ("Two?", "2", "numbers", False),
    ]
    assert len({r["id"] for r in rows}) == 2


@needs_data
def test_normalize_text_gives_the_released_results(curator, db):
    # Migration 6 replaced normalize_text with a form that skips the regex where it cannot
    # match; every stored hash depends on it staying the same function.
    curator("ingest", DATA / "alpaca_5000.json", DATA / "hh-rlhf_harmless-base/test.jsonl.gz")
    edge = [
        "a  b",
        "a\nb",
        "A\t\tB",
        "x \n y",
        "no runs here",
        "Ab  ",
        "a\x0bb",
        "a \x0cb",
        "tab\tonly",
        "cr\ronly",
        "  lead",
        "trail  ",
        "É  Ñ",
        "a\u00a0 b",
        "a \u3000b",
        "",
    ]
    con = storage.connect(db)
    try:
        con.execute("CREATE TEMP TABLE edge AS SELECT unnest($e) AS t", {"e": edge})
        differ, checked = con.execute(
            r"""SELECT count(*) FILTER (WHERE normalize_text(t) IS DISTINCT FROM
                       lower(regexp_replace(t, '[\t\n\v\f\r]\s*| \s+', ' ', 'g'))), count(*)
                FROM (SELECT prompt AS t FROM pairs UNION ALL SELECT response FROM pairs
                      UNION ALL SELECT t FROM edge)"""
        ).fetchone()
    finally:
        con.close()
    assert checked == 2 * 7306 + len(edge)
    assert differ == 0
