"""`curator quality judge`: real Alpaca pairs rated by the bundled SmolLM2 and by a faulty server.

The real server is the bundled SmolLM2-135M behind llama.cpp's server (curator.llm_server):
too small to follow a rubric reliably, so what is checked is what must hold whatever it says.
The fault server (bench/fault_server.py) answers judge-formatted verdicts through its `answer`
hook, keyed by the pair whose rubric it was sent, misbehaves on cue and counts every request,
which is how exactly-once is checked through retries and kill -9.
"""

from __future__ import annotations

import json
import os
import sys

import pytest

import storage
from bench.fault_server import FaultServer, usage_for
from curator import judge as judging
from curator import llm_server
from curator.distill import MalformedAnswer
from curator.judge import PairText
from tests.conftest import DATA, needs_data, query, run_console

pytestmark = needs_data
RUBRIC = judging.DEFAULT_RUBRIC


def _ingest(curator, tmp_path, records: list[dict]) -> list[PairText]:
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records))
    curator("ingest", path, "--source", "alpaca")
    return [PairText(*row) for row in query(curator.db, "SELECT id, prompt, response FROM pairs ORDER BY id")]


def _alpaca(n: int, short: bool = False) -> list[dict]:
    records = json.loads((DATA / "alpaca_5000.json").read_text())
    if short:  # what the 135M model can read in a small context, quickly
        records = [r for r in records if len(r["instruction"]) + len(r["input"]) < 150 and len(r["output"]) < 200]
    return records[:n]


class Verdicts:
    """The fault server's answer hook: the rubric it was sent -> a verdict for that pair,
    `Score: 1 + id % 5`, or what `script[pair id]` says next (then the usual one)."""

    def __init__(self, pairs: list[PairText], script: dict[int, list[str]] | None = None):
        self.by_message = {judging.request_messages(RUBRIC, p)[0]["content"]: p.pair_id for p in pairs}
        assert len(self.by_message) == len(pairs)
        self.script = {pair_id: list(lines) for pair_id, lines in (script or {}).items()}

    def message(self, pair_id: int) -> str:
        return next(m for m, i in self.by_message.items() if i == pair_id)

    @staticmethod
    def score(pair_id: int) -> int:
        return 1 + pair_id % 5

    @staticmethod
    def usual(pair_id: int) -> str:
        return f"**Score:** {Verdicts.score(pair_id)}\nReason: pair {pair_id} reads as expected."

    def __call__(self, message: str) -> str:
        pair_id = self.by_message[message]
        scripted = self.script.get(pair_id)
        if scripted:
            return scripted.pop(0)
        return self.usual(pair_id)


def _asked(server: FaultServer, verdicts: Verdicts) -> dict[int, int]:
    """Requests per pair id."""
    return {verdicts.by_message[m]: n for m, n in server.counts().items()}


def _judge_args(server: FaultServer, *more: str) -> list[str]:
    return [
        "quality",
        "judge",
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
        *more,
    ]


def _scores(db) -> dict[int, tuple]:
    return {
        row[0]: row[1:]
        for row in query(
            db,
            "SELECT pair_id, status, attempts, score, reason, error, prompt_tokens, completion_tokens "
            "FROM judge_scores ORDER BY pair_id",
        )
    }


# --- a real server: the bundled SmolLM2 ----------------------------------------------------


def _report(curator, *args: str) -> dict:
    """The report of a run that may judge no pair at all (the command then exits 1)."""
    result = curator(*args, "--json", ok=False)
    report = json.loads(result.stdout)
    assert result.exit_code == (1 if report["failed"] and not report["judged"] else 0), result.output
    return report


@pytest.mark.slow
def test_real_server_rates_real_alpaca_pairs_and_a_rerun_asks_nothing_scored(curator, db, tmp_path):
    pairs = _ingest(curator, tmp_path, _alpaca(6, short=True))
    with llm_server.start(n_parallel=3, context=1024) as server:
        args = [
            "quality",
            "judge",
            "--model",
            server.model,
            "--base-url",
            server.base_url,
            "--max-tokens",
            "24",
            "--max-tries",
            "2",
            "--backoff",
            "0",
            "--concurrency",
            "3",
        ]
        first = _report(curator, *args)
        state = _scores(db)
        done = {i for i, s in state.items() if s[0] == "done"}
        assert set(state) == {p.pair_id for p in pairs} and first["pending"] == 0
        assert (first["judged"], first["failed"]) == (len(done), len(pairs) - len(done))
        for status, attempts, score, _reason, error, prompt_tokens, completion_tokens in state.values():
            if status == "done":  # a score on the scale, whatever the small model made of the rubric
                assert 1 <= score <= 5 and error is None and 1 <= attempts <= 2
                assert prompt_tokens > 0 and 0 < completion_tokens <= 24 * attempts
            else:  # or a recorded reason after both tries
                assert status == "failed" and score is None and attempts == 2 and "malformed answer" in error
        assert first["histogram"] == {str(s): sum(state[i][2] == s for i in done) for s in range(1, 6)}

        again = _report(curator, *args)
    assert again["already"] == len(done) and again["judged"] + again["failed"] == len(pairs) - len(done)
    assert again["status"] == ("nothing to do" if len(done) == len(pairs) else "resumed")
    after = _scores(db)
    assert all(after[i] == state[i] for i in done)  # no scored pair was asked again
    shown = query(db, "SELECT id, judge_score, judge_reason FROM pairs_view ORDER BY id")
    assert shown == [(p.pair_id, after[p.pair_id][2], after[p.pair_id][3]) for p in pairs]
    cost = curator.json("cost")
    assert [(m["model"], m["task"], m["local"], m["cost"]) for m in cost["models"]] == [
        ("SmolLM2-135M-Instruct", "judge", True, 0.0)
    ]


# --- faults --------------------------------------------------------------------------------

FAULTS = ["429"], ["500", "500"], ["slow"], ["malformed"], ["drop"], ["500"] * 9, ["bad"]


def test_faults_are_retried_and_every_pair_gets_exactly_one_score(curator, db, tmp_path):
    pairs = _ingest(curator, tmp_path, _alpaca(14))
    deleted = pairs[-1].pair_id
    curator("delete", "--where", f"id = {deleted}")
    verdicts = Verdicts(pairs)
    ids = [p.pair_id for p in pairs]
    plan = {verdicts.message(i): list(faults) for i, faults in zip(ids, FAULTS)}
    always_500, bad = ids[5], ids[6]
    with FaultServer(plan, retry_after=1, slow_seconds=1.5, answer=verdicts) as server:
        report = curator.json(*_judge_args(server))
        asked = _asked(server, verdicts)
        assert asked == {
            **{i: 1 for i in ids[:-1]},
            ids[0]: 2,
            ids[1]: 3,
            ids[2]: 2,
            ids[3]: 2,
            ids[4]: 2,
            always_500: 3,
            bad: 1,
        }
        assert (report["pairs"], report["judged"], report["failed"], report["pending"]) == (13, 11, 2, 0)
        assert report["errors"] == 1 + 2 + 1 + 1 + 1 + 3 + 1
        state = _scores(db)
        assert deleted not in state  # deleted pairs are not judged
        assert state[always_500][:3] == ("failed", 3, None) and "HTTP 500" in state[always_500][4]
        assert state[bad][:2] == ("failed", 1) and "HTTP 400" in state[bad][4]
        for i in set(ids[:-1]) - {always_500, bad}:
            assert state[i][0] == "done" and state[i][2:5] == (Verdicts.score(i), f"pair {i} reads as expected.", None)
        histogram = {str(s): sum(Verdicts.score(i) == s for i in state if state[i][0] == "done") for s in range(1, 6)}
        assert report["histogram"] == histogram

        # A rerun asks only the failed pairs (the 500s go on; the bad request was a one-off).
        server.reset()
        rerun = curator.json(*_judge_args(server))
        assert _asked(server, verdicts) == {always_500: 3, bad: 1}
        assert (rerun["status"], rerun["already"], rerun["judged"], rerun["failed"]) == ("resumed", 11, 1, 1)
    scored = query(db, "SELECT id, judge_score FROM pairs_view WHERE judge_score IS NOT NULL ORDER BY id")
    assert scored == [(i, Verdicts.score(i)) for i in ids[:-1] if i != always_500]
    assert query(db, "SELECT count(*), count(DISTINCT pair_id) FROM judge_scores") == [(13, 13)]
    assert _scores(db)[bad][:2] == ("done", 2)  # attempts add up over runs


def test_an_unreadable_verdict_is_retried_then_failed_with_its_reason_and_its_tokens_cost(curator, db, tmp_path):
    pairs = _ingest(curator, tmp_path, _alpaca(5))
    ids = [p.pair_id for p in pairs]
    garbled, off_scale, once = ids[0], ids[1], ids[2]
    verdicts = Verdicts(
        pairs,
        {
            garbled: ["I think this answer is quite good."] * 9,
            off_scale: ["Score: 8/10\nReason: solid."] * 9,
            once: ["Score: excellent"],
        },
    )
    with FaultServer(answer=verdicts) as server:
        report = curator.json(*_judge_args(server))
        asked = _asked(server, verdicts)
    assert asked == {garbled: 3, off_scale: 3, once: 2, ids[3]: 1, ids[4]: 1}
    assert (report["judged"], report["failed"], report["errors"]) == (3, 2, 7)
    state = _scores(db)
    assert state[garbled][:3] == ("failed", 3, None)
    assert "malformed answer: no 'Score: N' line" in state[garbled][4] and "(after 3 requests)" in state[garbled][4]
    assert "not on the 1-5 scale" in state[off_scale][4]
    assert state[once][:3] == ("done", 2, Verdicts.score(once))

    # Every verdict received was billed, the unreadable ones too: the ledger counts them all.
    def tokens(pair_id: int, verdict: str, times: int = 1) -> tuple[int, int]:
        prompt_tokens, completion_tokens = usage_for([{"content": verdicts.message(pair_id)}], verdict)
        return prompt_tokens * times, completion_tokens * times

    spent = [
        tokens(garbled, "I think this answer is quite good.", 3),
        tokens(off_scale, "Score: 8/10\nReason: solid.", 3),
        tokens(once, "Score: excellent"),
        *(tokens(i, Verdicts.usual(i)) for i in (once, ids[3], ids[4])),
    ]
    expected = (sum(t[0] for t in spent), sum(t[1] for t in spent))
    assert (report["prompt_tokens"], report["completion_tokens"]) == expected
    assert state[garbled][5:] == spent[0]
    cost = curator.json("cost")
    (row,) = cost["models"]
    assert (row["model"], row["task"], row["local"], row["answers"], row["cost"]) == (
        "fault-model",
        "judge",
        True,
        3,
        0.0,
    )
    assert (cost["prompt_tokens"], cost["completion_tokens"]) == expected

    # As if it had gone to a paid API: without a price its cost is unknown; with one, priced.
    with storage.connect(db) as con:
        con.execute("UPDATE quality_runs SET local = false")
    assert curator.json("cost")["unpriced"] == ["fault-model"]
    table = tmp_path / "prices.json"
    table.write_text(json.dumps({"fault-model": {"input": 2.0, "output": 10.0}}))
    paid = curator("cost", "--prices", table)
    assert "fault-model  judge  remote" in paid.output
    assert f"${(expected[0] * 2.0 + expected[1] * 10.0) / 1e6:,.4f}" in paid.output


@pytest.mark.slow
def test_kill_9_mid_run_then_rerun_scores_every_pair_once_and_asks_nothing_stored(curator, db, tmp_path):
    pairs = _ingest(curator, tmp_path, _alpaca(200))
    verdicts = Verdicts(pairs)
    with FaultServer(latency=0.03, answer=verdicts) as server:
        command = [os.path.join(os.path.dirname(sys.executable), "curator"), "--db", str(db), *_judge_args(server)]
        server.kill_9_after(60, command, tmp_path / "killed-run.out")
        first = _asked(server, verdicts)
        stored = {i for (i,) in query(db, "SELECT pair_id FROM judge_scores WHERE status = 'done'")}
        assert 0 < len(stored) < len(pairs)
        assert all(first[i] == 1 for i in stored)

        server.reset()
        again = run_console("--db", db, *_judge_args(server, "--json"))
        assert again.returncode == 0, again.stderr
        second = _asked(server, verdicts)
    assert not stored & set(second)  # no stored score was asked for again
    assert set(second) == {p.pair_id for p in pairs} - stored
    assert json.loads(again.stdout)["already"] == len(stored)
    assert query(db, "SELECT count(*), count(DISTINCT pair_id), min(status), max(status) FROM judge_scores") == [
        (200, 200, "done", "done")
    ]
    assert query(db, "SELECT count(*) FROM pairs_view WHERE judge_score = 1 + id % 5") == [(200,)]
    assert [j["status"] for j in curator.json("jobs")][:2] == ["done", "interrupted"]


# --- the pure part -------------------------------------------------------------------------


def test_verdicts_are_read_through_markdown_and_rejected_off_the_scale():
    read = judging.parse_verdict
    assert read("Score: 4\nReason: Correct and clear.") == judging.Verdict(4, "Correct and clear.")
    assert read("**Score:** 5\n**Reason:** Ideal.") == judging.Verdict(5, "Ideal.")
    assert read("## Score: 3/5\n\nReason:\nPartly right.\nMore.") == judging.Verdict(3, "Partly right.")
    assert read("2\nThe answer misses the point.") == judging.Verdict(2, "The answer misses the point.")  # AlpaGasus
    assert read("Scores vary by task.\nRating = 1 out of 5") == judging.Verdict(1, None)
    for text, why in [
        ("Score: 8/10", "1-5 scale"),
        ("Score: 3.5", "whole number"),
        ("Score: 0", "outside 1-5"),
        ("Score: five", "not a number"),
        ("Looks fine to me.", "no 'Score: N' line"),
        ("", "no"),
    ]:
        with pytest.raises(MalformedAnswer, match=why):
            read(text)


def test_the_rubric_is_filled_once_and_must_name_both_texts():
    pair = PairText(1, "Explain {response} in Python.", "It is a placeholder.")
    (message,) = judging.request_messages("Q: {prompt}\nA: {response}", pair)
    assert message == {"role": "user", "content": "Q: Explain {response} in Python.\nA: It is a placeholder."}
    with pytest.raises(ValueError, match=r"\{response\}"):
        judging.check_rubric("Rate this: {prompt}")
    judging.check_rubric(RUBRIC)
    same = judging.run_identity("m", RUBRIC, 128, 0.0)
    assert same == judging.run_identity("m", RUBRIC, 128, 0.0) != judging.run_identity("m", RUBRIC + " ", 128, 0.0)


def test_a_custom_rubric_file_and_bad_options(curator, db, tmp_path):
    pairs = _ingest(curator, tmp_path, _alpaca(2))
    rubric = tmp_path / "rubric.txt"
    rubric.write_text("Rate 1-5.\n<<{prompt}>>\n<<{response}>>\nScore:")
    sent = []
    with FaultServer(answer=lambda m: sent.append(m) or "Score: 5\nReason: fine") as server:
        first = curator.json(*_judge_args(server, "--rubric", rubric, "--limit", "1"))
        rest = curator.json(*_judge_args(server, "--rubric", rubric))
    assert (first["judged"], first["pending"], rest["already"], rest["judged"], rest["pending"]) == (1, 1, 1, 1, 0)
    assert sorted(sent) == sorted(f"Rate 1-5.\n<<{p.prompt}>>\n<<{p.response}>>\nScore:" for p in pairs)
    assert json.loads(query(db, "SELECT params FROM quality_runs")[0][0])["rubric"] == rubric.read_text()
    rubric.write_text("no placeholders")
    refused = curator(
        "quality", "judge", "--model", "m", "--base-url", "http://127.0.0.1:9/v1", "--rubric", rubric, ok=False
    )
    assert refused.exit_code != 0 and "must contain {prompt} and {response}" in refused.output
