"""`curator distill`, `cost`, `prompts template`: a real llama.cpp server and a faulty one, on 127.0.0.1.

The real server is the bundled SmolLM2-135M behind llama.cpp's OpenAI-compatible server
(curator.llm_server); the fault server (bench/fault_server.py) answers deterministically
and misbehaves on cue, and counts every request per prompt, which is how exactly-once is
checked through retries and kill -9.
"""

from __future__ import annotations

import json
import os
import random
import sys
import urllib.error
import urllib.request

import pytest

import jobs.distill
import storage
from bench.fault_server import CONTEXT_FIT, FaultServer, answer_for, usage_for
from curator import distill, formats, llm_server
from storage import jobs as job_rows
from tests.conftest import DATA, needs_data, query, run_console

KEY = "sk-test-curator-DISTINCTIVE-8f3a9c2e71"  # must never reach the database or the output


def _prompts(tmp_path, n: int, name: str = "prompts.txt") -> tuple:
    prompts = [f"q{i:02d}" for i in range(n)]
    path = tmp_path / name
    path.write_text("\n".join(prompts) + "\n")
    return path, prompts


def _fast_retries(server: FaultServer) -> list[str]:
    return [
        "--model",
        "fault-model",
        "--base-url",
        server.base_url,
        "--timeout",
        "0.5",
        "--max-tries",
        "3",
        "--backoff",
        "0.05",
        "--concurrency",
        "4",
    ]


def _assert_key_nowhere(db, *outputs: str) -> None:
    """Not in the database's bytes (file and WAL), nor in any text column, nor in any output."""
    for path in db.parent.glob(db.name + "*"):
        assert KEY.encode() not in path.read_bytes(), path
    con = storage.connect_read_only(db)
    try:
        columns = con.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE data_type = 'VARCHAR' AND table_schema = 'main'"
        ).fetchall()
        assert ("jobs", "params") in columns and ("distill_prompts", "error") in columns
        for table, column in columns:
            assert con.execute(f'SELECT count(*) FROM "{table}" WHERE contains("{column}", ?)', [KEY]).fetchone() == (
                0,
            )
    finally:
        con.close()
    for output in outputs:
        assert KEY not in output


# --- a real server: the bundled SmolLM2 ----------------------------------------------------


@pytest.fixture(scope="module")
def smollm2():
    with llm_server.start(n_parallel=4, context=1024) as server:
        yield server


@needs_data
@pytest.mark.slow
def test_real_server_answers_real_sharegpt_prompts_then_another_run_answers_them_again(smollm2, curator, db, tmp_path):
    records = json.loads((DATA / "ShareGPT_V3_filtered_500.json").read_text())[:6]  # first turns, no answers
    prompts_file = tmp_path / "sharegpt6.json"
    prompts_file.write_text(json.dumps(records))
    args = [
        "distill",
        prompts_file,
        "--model",
        smollm2.model,
        "--base-url",
        smollm2.base_url,
        "--max-tokens",
        "16",
        "--concurrency",
        "4",
    ]
    report = curator.json(*args)
    source = f"sharegpt6:{smollm2.model}"
    assert (report["answered"], report["failed"], report["source"]) == (6, 0, source)
    rows = query(
        db,
        "SELECT p.line, p.prompt, p.response, p.model, p.finish_reason, d.prompt_tokens, "
        "d.completion_tokens FROM pairs p JOIN distill_prompts d USING (file_id, line, pair_index) "
        "ORDER BY p.line",
    )
    assert [r[1] for r in rows] == [r["conversations"][0]["value"].strip() for r in records]
    assert all(r[2] and r[3] == "SmolLM2-135M-Instruct" and r[4] in ("stop", "length") for r in rows)
    assert all(r[5] > 0 and 0 < r[6] <= 16 for r in rows)
    assert sum(r[4] == "length" for r in rows) == report["truncated"]

    cost = curator.json("cost")
    assert [(m["model"], m["local"], m["answers"], m["cost"]) for m in cost["models"]] == [
        ("SmolLM2-135M-Instruct", True, 6, 0.0)
    ]
    assert (cost["prompt_tokens"], cost["completion_tokens"]) == (sum(r[5] for r in rows), sum(r[6] for r in rows))
    assert cost["cost"] == 0.0

    again = curator.json(*args)
    assert (again["status"], again["answered"], again["already"]) == ("nothing to do", 0, 6)
    assert query(db, "SELECT count(*) FROM pairs") == [(6,)]

    # The same prompts from the database, asked again under a system message: both kept.
    other = curator.json(
        "distill",
        "--from-source",
        source,
        "--model",
        smollm2.model,
        "--base-url",
        smollm2.base_url,
        "--max-tokens",
        "12",
        "--system",
        "Answer in one short sentence.",
        "--source",
        "sharegpt6-brief",
    )
    assert (other["answered"], other["status"]) == (6, "new")
    linked = query(
        db,
        "SELECT a.prompt = b.prompt, b.messages FROM pairs a JOIN pairs b ON b.line = a.id "
        "WHERE b.source = 'sharegpt6-brief'",
    )
    assert len(linked) == 6 and all(same for same, _ in linked)
    messages = json.loads(linked[0][1])
    assert [m["role"] for m in messages] == ["system", "user", "assistant"]
    assert query(db, "SELECT count(*), count(DISTINCT id) FROM pairs") == [(12, 12)]


# --- faults --------------------------------------------------------------------------------

PLAN = {
    "q01": ["429"],
    "q02": ["500", "500"],
    "q03": ["slow"],
    "q04": ["malformed"],
    "q05": ["drop"],
    "q06": ["context"],
    "q07": ["length"],
    "q08": ["500"] * 9,
    "q09": ["bad"],
}


def test_faults_are_retried_each_answer_stored_once_and_cost_adds_up(curator, db, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    monkeypatch.setattr(jobs.distill, "PAGE", 5)  # prompts are read a page at a time: three pages here
    path, prompts = _prompts(tmp_path, 12)
    with FaultServer(PLAN, retry_after=1, slow_seconds=1.5) as server:
        result = curator("distill", path, *_fast_retries(server), "--json")
        report = json.loads(result.stdout)
        counts = server.counts()
        assert (report["answered"], report["failed"], report["truncated"]) == (10, 2, 1)
        assert counts == {
            "q00": 1,
            "q01": 2,
            "q02": 3,
            "q03": 2,
            "q04": 2,
            "q05": 2,
            "q06": 2,
            "q07": 1,
            "q08": 3,
            "q09": 1,
            "q10": 1,
            "q11": 1,
        }
        first, second = server.times("q01")
        assert second - first >= 1.0  # Retry-After: 1 was honoured
        assert server.max_tokens("q06") == [512, CONTEXT_FIT]  # shrunk to what fits, then answered
        assert {auth for _, _, _, auth in server.requests} == {f"Bearer {KEY}"}

        pairs = query(db, "SELECT prompt, response, model, finish_reason FROM pairs ORDER BY prompt")
        answered = [p for p in prompts if p not in ("q08", "q09")]
        assert pairs == [(p, answer_for(p), "fault-model", "length" if p == "q07" else "stop") for p in answered]
        state = {
            row[0]: row[1:]
            for row in query(
                db,
                "SELECT prompt, status, attempts, error, max_tokens, prompt_tokens, completion_tokens "
                "FROM distill_prompts",
            )
        }
        assert state["q06"][3] == CONTEXT_FIT
        assert state["q08"][:2] == ("failed", 3) and "HTTP 500" in state["q08"][2]
        assert state["q09"][:2] == ("failed", 1) and "HTTP 400" in state["q09"][2]
        for p in answered:
            expected = usage_for([{"content": p}], answer_for(p))
            assert state[p][0] == "done" and state[p][4:] == expected

        # A rerun asks only the failed prompts (q08 fails again: its server still errs).
        server.reset()
        rerun = curator("distill", path, *_fast_retries(server), "--json")
        assert set(server.counts()) == {"q08", "q09"}
        assert json.loads(rerun.stdout)["answered"] == 1
    assert query(db, "SELECT count(*), count(DISTINCT prompt) FROM pairs") == [(11, 11)]

    cost = curator.json("cost")
    tokens = [usage_for([{"content": p}], answer_for(p)) for p in prompts if p != "q08"]
    assert (cost["answers"], cost["prompt_tokens"], cost["completion_tokens"], cost["cost"]) == (
        11,
        sum(t[0] for t in tokens),
        sum(t[1] for t in tokens),
        0.0,
    )  # a loopback server costs nothing

    # The same tokens as if they had gone to a paid API: priced by the table, or unpriced.
    con = storage.connect(db)
    con.execute("UPDATE distill_runs SET local = false")
    con.close()
    prices = tmp_path / "prices.json"
    prices.write_text(json.dumps({"fault-model": {"input": 2.0, "output": 10.0}}))
    priced = curator.json("cost", "--prices", prices)
    assert priced["cost"] == pytest.approx((priced["prompt_tokens"] * 2.0 + priced["completion_tokens"] * 10.0) / 1e6)
    assert priced["models"][0]["priced"] == "table"
    unpriced = curator.json("cost")
    assert unpriced["cost"] is None and unpriced["unpriced"] == ["fault-model"]
    assert "no price for fault-model" in curator("cost").output

    _assert_key_nowhere(db, result.output, rerun.output)


def test_a_bad_key_stops_the_run_without_storing_or_printing_the_key(curator, db, tmp_path, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", KEY)
    path, prompts = _prompts(tmp_path, 6)
    with FaultServer({p: ["auth"] for p in prompts}) as server:
        result = curator("distill", path, *_fast_retries(server), ok=False)
    assert result.exit_code != 0
    assert "HTTP 401" in result.output and "Incorrect API key provided: ***" in result.output
    (job,) = curator.json("jobs")
    assert job["status"] == "failed" and "HTTP 401" in job["error"]
    assert query(db, "SELECT DISTINCT status FROM distill_prompts") == [("pending",)]  # asked again on rerun
    _assert_key_nowhere(db, result.output)


def test_no_key_is_needed_on_loopback_and_required_elsewhere(curator, db, tmp_path, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    path, _ = _prompts(tmp_path, 2)
    refused = curator(
        "distill", path, "--model", "gpt-4o-mini", "--base-url", "https://api.example.invalid/v1", ok=False
    )
    assert refused.exit_code != 0 and "set OPENAI_API_KEY" in refused.output
    with FaultServer() as server:
        curator("distill", path, *_fast_retries(server))
        assert {auth for _, _, _, auth in server.requests} == {"Bearer curator-local-no-key"}


def test_prompts_files_of_every_kind(curator, db, tmp_path):
    lines = [
        json.dumps({"prompt": "a gpt4all prompt without a response"}),
        json.dumps({"instruction": "Summarize this", "input": "the text"}),
        json.dumps({"conversations": [{"from": "human", "value": "a sharegpt first turn"}]}),
        json.dumps(
            {
                "messages": [
                    {"role": "system", "content": "Be brief."},
                    {"role": "user", "content": "first"},
                    {"role": "assistant", "content": "ok"},
                    {"role": "user", "content": "second"},
                ]
            }
        ),
        json.dumps("a bare JSON string"),
        json.dumps({"prompt": "already answered", "response": "old answer"}),
        json.dumps({"foo": 1}),
        "42",
        "{not json",
    ]
    path = tmp_path / "mixed.jsonl"
    path.write_text("\n".join(lines) + "\n")
    with FaultServer() as server:
        report = curator.json("distill", path, *_fast_retries(server))
        asked = set(server.counts())
    assert asked == {
        "a gpt4all prompt without a response",
        "Summarize this\n\nthe text",
        "a sharegpt first turn",
        "second",
        "a bare JSON string",
        "already answered",
    }
    assert (report["answered"], report["rejects"]) == (6, 3)
    (messages,) = query(db, "SELECT messages FROM pairs WHERE prompt = 'second'")[0]
    assert [m["role"] for m in json.loads(messages)] == ["system", "user", "assistant", "user", "assistant"]
    assert {r["line"] for r in curator.json("rejects")} == {7, 8, 9}

    text = tmp_path / "plain.txt"
    text.write_text("first prompt\n\n  second prompt  \n")
    with FaultServer() as server:
        curator("distill", text, *_fast_retries(server))
    assert query(db, "SELECT line, prompt FROM pairs WHERE source = 'plain:fault-model' ORDER BY line") == [
        (1, "first prompt"),
        (3, "second prompt"),
    ]


@needs_data
def test_from_source_keeps_both_answers_each_with_the_model_that_wrote_it(curator, db, tmp_path):
    records = json.loads((DATA / "alpaca_5000.json").read_text())[:5]
    alpaca = tmp_path / "alpaca5.jsonl"  # as GPT4All records, which name their model (Alpaca's was davinci-003)
    alpaca.write_text(
        "".join(
            json.dumps(
                {
                    "prompt": f"{r['instruction']}\n\n{r['input']}".strip(),
                    "response": r["output"],
                    "model": "text-davinci-003",
                }
            )
            + "\n"
            for r in records
        )
    )
    curator("ingest", alpaca, "--source", "alpaca")
    before = query(db, "SELECT id, prompt, response, model FROM pairs ORDER BY id")
    with FaultServer(model="gpt-4o-mini-2024-07-18") as server:
        report = curator.json(
            "distill",
            "--from-source",
            "alpaca",
            "--model",
            "gpt-4o-mini",
            "--base-url",
            server.base_url,
            "--source",
            "alpaca-4o",
        )
        again = curator.json(
            "distill",
            "--from-source",
            "alpaca",
            "--model",
            "gpt-4o-mini",
            "--base-url",
            server.base_url,
            "--source",
            "alpaca-4o",
        )
        asked = server.counts()
    assert (report["answered"], again["status"]) == (5, "nothing to do")
    assert sorted(asked) == sorted(p for _, p, _, _ in before) and set(asked.values()) == {1}
    # The originals are untouched; each new pair points at its original (line = its id) and
    # records the model the server says answered, not the name asked for.
    assert {m for _, _, _, m in before} == {"text-davinci-003"}
    assert query(db, "SELECT id, prompt, response, model FROM pairs WHERE source = 'alpaca' ORDER BY id") == before
    linked = query(
        db,
        "SELECT a.id, b.prompt = a.prompt, b.response, b.model FROM pairs a "
        "JOIN pairs b ON b.line = a.id AND b.source = 'alpaca-4o' ORDER BY a.id",
    )
    assert linked == [(i, True, answer_for(p), "gpt-4o-mini-2024-07-18") for i, p, _, _ in before]
    assert [(m["model"], m["answers"]) for m in curator.json("cost")["models"]] == [("gpt-4o-mini-2024-07-18", 5)]


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_asks_nothing_stored_and_loses_nothing(db, tmp_path):
    path, prompts = _prompts(tmp_path, 240)
    with FaultServer(latency=0.03) as server:
        command = [
            os.path.join(os.path.dirname(sys.executable), "curator"),
            "--db",
            str(db),
            "distill",
            str(path),
            *_fast_retries(server),
        ]
        killed_output = tmp_path / "killed-run.out"  # its progress bar and anything else it wrote
        server.kill_9_after(80, command, killed_output, env={**os.environ, "OPENAI_API_KEY": KEY})
        first = server.counts()
        stored = {p for (p,) in query(db, "SELECT prompt FROM distill_prompts WHERE status = 'done'")}
        assert 0 < len(stored) < len(prompts)
        assert {p for (p,) in query(db, "SELECT prompt FROM pairs")} == stored
        assert all(first[p] == 1 for p in stored)

        server.reset()
        again = run_console("--db", db, "distill", path, *_fast_retries(server), env={"OPENAI_API_KEY": KEY})
        assert again.returncode == 0, again.stderr
        second = server.counts()
    assert not stored & set(second)  # no stored answer was asked for again
    assert set(second) == set(prompts) - stored
    assert query(db, "SELECT count(*), count(DISTINCT prompt), count(DISTINCT id) FROM pairs") == [(240, 240, 240)]
    assert query(db, "SELECT DISTINCT status FROM distill_prompts") == [("done",)]
    con = storage.connect_read_only(db)
    try:
        assert [j["status"] for j in job_rows.listing(con)] == ["done", "interrupted"]
    finally:
        con.close()
    _assert_key_nowhere(db, killed_output.read_text(), again.stdout, again.stderr)


# --- prompt templates ----------------------------------------------------------------------


def test_prompts_template_fills_gpt4all_j_schema(curator, tmp_path):
    nouns = tmp_path / "nouns.txt"
    nouns.write_text("the sea\nan owl\n\n")
    out = curator(
        "prompts",
        "template",
        "--values",
        "TYPE=poem,essay",
        "--list",
        f"NOUN={nouns}",
        "--values",
        "PERSON=Shakespeare,a pirate",
    ).stdout.splitlines()
    assert out[:2] == [
        "Write a poem about the sea in the style of Shakespeare",
        "Write a poem about the sea in the style of a pirate",
    ]
    assert len(out) == 8 and "Write an essay about an owl in the style of a pirate" in out
    sample = curator(
        "prompts",
        "template",
        "--values",
        "TYPE=poem,essay",
        "--list",
        f"NOUN={nouns}",
        "--values",
        "PERSON=Shakespeare,a pirate",
        "--sample",
        "3",
        "--seed",
        "7",
    ).stdout.splitlines()
    assert len(set(sample)) == 3 and set(sample) <= set(out)
    missing = curator("prompts", "template", "--values", "TYPE=poem", ok=False)
    assert missing.exit_code != 0 and "no values for [NOUN], [PERSON]" in missing.output


# --- the pure policy -----------------------------------------------------------------------


def test_classify_and_backoff():
    assert [distill.classify(s) for s in (None, 408, 429, 500, 503, 400, 401, 403, 404, 422)] == [
        "retry",
        "retry",
        "retry",
        "retry",
        "retry",
        "give up",
        "abort",
        "abort",
        "abort",
        "give up",
    ]
    assert distill.classify(429, "You exceeded your current quota", "insufficient_quota") == "abort"
    assert distill.classify(400, "This model's maximum context length is 4097 tokens") == "shrink"
    assert (
        distill.classify(400, "the request exceeds the available context size", "exceed_context_size_error") == "shrink"
    )
    policy, rng = distill.RetryPolicy(base_delay=1.0, max_delay=8.0), random.Random(1)
    for tries, ceiling in [(1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)]:
        waits = [policy.delay(tries, None, rng) for _ in range(200)]
        assert ceiling / 2 <= min(waits) and max(waits) <= ceiling and len(set(waits)) > 100  # jittered
    assert all(30 <= policy.delay(1, 30, rng) <= 33 for _ in range(50))  # Retry-After wins over backoff


def test_retry_after_and_shrinking():
    assert distill.retry_after_seconds({"Retry-After": "7"}) == 7.0
    assert distill.retry_after_seconds({"retry-after-ms": "250", "retry-after": "9"}) == 0.25
    assert distill.retry_after_seconds(
        {"Retry-After": "Wed, 21 Oct 2015 07:28:30 GMT"}, now=1445412500.0
    ) == pytest.approx(10.0)
    assert distill.retry_after_seconds({}) is None and distill.retry_after_seconds({"Retry-After": "soon"}) is None
    openai_message = (
        "This model's maximum context length is 4097 tokens. However, you requested 4600 tokens "
        "(600 in the messages, 4000 in the completion)."
    )
    assert distill.shrunk_max_tokens(4000, openai_message) == 3497
    assert distill.shrunk_max_tokens(512, "exceeds the context", {"n_ctx": 1024, "n_prompt_tokens": 900}) == 124
    assert distill.shrunk_max_tokens(512, "context length exceeded") == 256
    assert (
        distill.shrunk_max_tokens(512, "", {"n_ctx": 1024, "n_prompt_tokens": 1100}) is None
    )  # the prompt alone is too long


def test_answers_keys_urls_and_prices():
    ok = json.dumps(
        {
            "model": "gpt-4o-mini-2024-07-18",
            "choices": [{"message": {"content": " Hi. "}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": 9, "completion_tokens": 2},
        }
    ).encode()
    assert distill.parse_answer(ok, "gpt-4o-mini") == distill.Answer("Hi.", "stop", "gpt-4o-mini-2024-07-18", 9, 2)
    for body in [
        b'{"choices": [',
        b"[]",
        b'{"choices": []}',
        b'{"choices": [{"message": {"content": null}}]}',
        b'{"choices": [{"message": {"content": "   "}}]}',
    ]:
        with pytest.raises(distill.MalformedAnswer):
            distill.parse_answer(body, "m")
    assert distill.redact(f"Incorrect API key provided: {KEY}.", KEY) == "Incorrect API key provided: ***."
    assert distill.redact("Incorrect API key provided: sk-proj-****abcd.", None) == "Incorrect API key provided: ***."
    assert distill.public_url("https://user:secret@example.com:8443/v1?key=x") == "https://example.com:8443/v1"
    assert [
        distill.is_loopback(u)
        for u in (
            "http://127.0.0.1:8080/v1",
            "http://localhost/v1",
            "http://[::1]:1/v1",
            "https://api.openai.com/v1",
            None,
        )
    ] == [True, True, True, False, False]
    rows = distill.price_usage(
        [
            {
                "model": "gpt-4o-mini-2024-07-18",
                "local": False,
                "answers": 1,
                "prompt_tokens": 1_000_000,
                "completion_tokens": 1_000_000,
            },
            {"model": "SmolLM2", "local": True, "answers": 1, "prompt_tokens": 5, "completion_tokens": 5},
            {"model": "mystery", "local": False, "answers": 1, "prompt_tokens": 5, "completion_tokens": 5},
        ],
        distill.DEFAULT_PRICES,
    )
    assert [(r["cost"], r["priced"]) for r in rows] == [
        (pytest.approx(0.75), "table"),
        (0.0, "local"),
        (None, "unknown"),
    ]
    with pytest.raises(ValueError, match="prices for 'x'"):
        distill.parse_prices('{"x": {"input": 1}}')


@needs_data
def test_record_prompts_on_real_records():
    lottery = [json.loads(line) for line in (DATA / "prompt_lottery_en_250_text.jsonl").read_text().splitlines()[:20]]
    assert [distill.record_prompts(r) for r in lottery] == [[(r.strip(), None)] for r in lottery]
    trees = [json.loads(line) for line in (DATA / "en_100_tree.jsonl").read_text().splitlines()[:10]]
    for tree in trees:  # the prompts ingest pairs, each with the turns before its answer
        pairs = formats.record_pairs(tree, "oasst")
        asked = distill.record_prompts(tree)
        assert [p for p, _ in asked] == [pair.prompt for pair in pairs]
        assert all(context is None or context[-1] == {"role": "user", "content": p} for p, context in asked)
    with pytest.raises(formats.RecordError, match="use --prompt-field"):
        distill.record_prompts({"question": "x?"})
    assert distill.record_prompts({"question": "What is 2+2?"}, prompt_field="question") == [("What is 2+2?", None)]


def test_local_server_serves_on_loopback_and_stops(smollm2):
    health = lambda url: urllib.request.urlopen(url.removesuffix("/v1") + "/health", timeout=30).status  # noqa: E731
    assert smollm2.base_url.startswith("http://127.0.0.1:") and health(smollm2.base_url) == 200
    with llm_server.start(n_parallel=1, context=256, name="second") as second:
        assert second.base_url != smollm2.base_url and second.model == "second" and health(second.base_url) == 200
    with pytest.raises(urllib.error.URLError):
        health(second.base_url)
    with pytest.raises(FileNotFoundError):
        llm_server.start("/nonexistent/model.gguf")


def test_distill_options_are_checked(curator, tmp_path):
    path, _ = _prompts(tmp_path, 1)
    both = curator(
        "distill", path, "--from-source", "x", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", ok=False
    )
    assert both.exit_code != 0 and "one of them" in both.output
    unknown = curator(
        "distill", "--from-source", "nope", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", ok=False
    )
    assert "no pairs with source 'nope'" in unknown.output
