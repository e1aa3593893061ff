"""Quality signals on real data: precision and recall of each signal on labelled real
examples, token counts against llama.cpp, the job's runs, reruns and resumption, the CLI.

Labels are (file, record index) in ../shared/data, judged by reading the texts. Refusal
counts an answer that declines (wholly or before a partial answer), disclaims being an AI
("As an AI language model, I ..."; GPT4All's v1.1 removed these), or moralises instead of
answering; sympathy ("I'm sorry to hear that"), corrections and stories are not refusals.
"""

from __future__ import annotations

import gzip
import json
import random

import pytest

import storage
from bench.labelled_refusals import HH_OTHERS, HH_REFUSALS, NOT_REFUSALS, REFUSALS
from conftest import DATA, needs_data, query
from curator import chat_tokens, language
from curator import signals as S
from jobs.signals import compute_signals

pytestmark = needs_data

EVAL = DATA / "alpaca_eval_results"
MODELS = (
    "guanaco-7b",
    "falcon-7b-instruct",
    "gpt4",
    "llama-2-7b-chat-hf",
    "vicuna-7b",
    "baize-v2-7b",
    "text_davinci_003",
    "gpt4_gamed",
)
T0_TEMPLATES = (
    "adversarial_qa_dbert_based_on",
    "paws_labeled_final_context_question",
    "commonsense_qa_question_to_answer_index",
)

MALFORMED = {  # (model or file, index): reason
    ("alpaca_5000", 1275): "placeholder",
    ("alpaca_5000", 4361): "placeholder",
    ("alpaca_5000", 2710): "merged_turns",
    ("alpaca_5000", 2930): "merged_turns",
    ("alpaca_5000", 3493): "merged_turns",
    ("alpaca_5000", 4052): "merged_turns",
    ("guanaco-7b", 487): "merged_turns",
    ("guanaco-7b", 510): "merged_turns",
    ("guanaco-7b", 676): "merged_turns",
    ("baize-v2-7b", 495): "repetition",
    ("falcon-7b-instruct", 603): "repetition",
    ("guanaco-7b", 714): "repetition",
    ("guanaco-7b", 620): "repetition",
    ("text_davinci_003", 366): "empty",
    ("text_davinci_003", 371): "echo",
    ("gpt4_gamed", 689): "unbalanced_fence",
}
# Balanced code fences, markdown tables, a repeated chorus, "8. Output of a machine" in a
# list, recipes with "Instructions:", hashtags, "undefined" as a real answer.
NOT_MALFORMED = (
    [("gpt4", i) for i in (252, 290, 300, 313, 320, 324, 343, 347, 209, 301, 492, 504, 595, 284, 451)]
    + [("text_davinci_003", 130), ("text_davinci_003", 259)]
    + [("alpaca_5000", i) for i in (4541, 185, 1088, 3790, 3923, 98, 167)]
)


def _records(name: str) -> list[dict]:
    path = DATA / "alpaca_5000.json" if name == "alpaca_5000" else EVAL / name / "model_outputs.json"
    return json.loads(path.read_text())


def _output(name: str, index: int) -> str:
    return _records(name)[index]["output"].strip()


@pytest.fixture(scope="module")
def signal_db(tmp_path_factory):
    """Eight models' AlpacaEval outputs (incl. the 10-character gamed set), OpenAssistant
    v2 (multilingual, multi-turn) and three P3 templates, with signals computed."""
    from click.testing import CliRunner

    from cli.main import cli

    db = tmp_path_factory.mktemp("signals") / "signals.duckdb"
    runner = CliRunner()
    for model in MODELS:
        result = runner.invoke(
            cli, ["--db", str(db), "ingest", str(EVAL / model / "model_outputs.json"), "--source", model]
        )
        assert result.exit_code == 0, result.output
    t0 = [str(DATA / "t0_train_50k_data_per_template" / f"{name}.jsonl") for name in T0_TEMPLATES]
    result = runner.invoke(cli, ["--db", str(db), "ingest", str(DATA / "oasst2_filtered.jsonl"), *t0])
    assert result.exit_code == 0, result.output
    report = compute_signals(storage.Database(db))
    return db, report


def _flags(db, column: str) -> dict[tuple[str, int], object]:
    """(source, record index) -> column value, for the AlpacaEval models."""
    rows = query(
        db,
        f"SELECT source, line, {column} FROM pairs_view WHERE source IN ({', '.join('?' * len(MODELS))})",
        list(MODELS),
    )
    return {(source, line - 1): value for source, line, value in rows}


def _precision_recall(predicted: dict, positives: list, negatives: list) -> tuple[float, float]:
    negatives = [k for k in negatives if k in predicted]  # empty answers were rejected at ingest
    tp = sum(bool(predicted[k]) for k in positives)
    fp = sum(bool(predicted[k]) for k in negatives)
    return tp / max(tp + fp, 1), tp / len(positives)


def test_refusal_precision_and_recall_on_labelled_real_answers(signal_db):
    db, _ = signal_db
    flags = _flags(db, "refusal")
    positives = [(m, i) for m, ids in REFUSALS.items() for i in ids]
    negatives = [(m, i) for m, ids in NOT_REFUSALS.items() for i in ids]
    precision, recall = _precision_recall(flags, positives, negatives)
    print(
        f"\nrefusal: {len(positives)} refusals, {len(negatives)} hard negatives: "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    assert precision >= 0.97 and recall >= 0.93
    # Whole real sets: Alpaca (text-davinci-003) holds no refusals; the GPT-4 outputs a few.
    alpaca_flags = [S.is_refusal(r["output"]) for r in _records("alpaca_5000")]
    assert sum(alpaca_flags) == 0
    assert 15 <= sum(v for (m, _), v in flags.items() if m == "gpt4") <= 35
    with gzip.open(DATA / "hh-rlhf_harmless-base" / "test.jsonl.gz", "rt") as f:
        hh = [json.loads(line)["chosen"].rsplit("\n\nAssistant:", 1)[-1].strip() for line in f]
    flags_hh = {i: S.is_refusal(hh[i]) for i in HH_REFUSALS + HH_OTHERS}
    precision, recall = _precision_recall(flags_hh, HH_REFUSALS, HH_OTHERS)
    print(
        f"refusal, held out: 80 random HH answers ({len(HH_REFUSALS)} refusals): "
        f"precision {precision:.3f}, recall {recall:.3f}"
    )
    assert precision >= 0.95 and recall >= 0.5
    assert not S.is_refusal("I'm sorry to hear that. Losing a pet is hard; here is what helps:")
    assert S.is_refusal("I'm sorry, but I can't assist with that request.")


def test_truncated_on_the_gamed_set_and_complete_answers(signal_db):
    db, _ = signal_db
    flags = _flags(db, "truncated")
    gamed, full = _records("gpt4_gamed"), _records("gpt4")
    # The gamed set is GPT-4's own answers cut to 10 characters: label by that, checked here.
    cut = [i for i, r in enumerate(gamed) if len(r["output"]) == 10 and len(full[i]["output"]) > 10]
    assert len(cut) == 766 and all(full[i]["output"].startswith(gamed[i]["output"]) for i in cut)
    positives = [("gpt4_gamed", i) for i in cut]
    negatives = [("gpt4", i) for i in range(len(full))] + [("text_davinci_003", i) for i in range(805)]
    precision, recall = _precision_recall(flags, positives, negatives)
    negatives = [k for k in negatives if k in flags]
    false_rate = sum(bool(flags[k]) for k in negatives) / len(negatives)
    print(
        f"\ntruncated: gamed 10-char cuts recall {recall:.3f}; {len(negatives)} complete answers: "
        f"precision {precision:.3f}, false-flag rate {false_rate:.4f}"
    )
    # "Of course!", "Larry Page" or "Certainly!" cut at 10 characters read as finished answers,
    # so recall on this set is bounded; what is flagged must be right.
    assert precision >= 0.99 and recall >= 0.35 and false_rate <= 0.003
    # Alpaca's 5,000 complete answers and P3's one-word labels are not cut.
    assert sum(S.is_truncated(r["output"].strip(), None, 6) for r in _records("alpaca_5000")) <= 3
    t0_flags = query(
        db,
        "SELECT count(*) FILTER (WHERE truncated), count(*) FROM pairs_view WHERE source LIKE "
        "'%_based_on' OR source LIKE 'paws%' OR source LIKE 'commonsense%'",
    )[0]
    assert t0_flags[1] > 500 and t0_flags[0] == 0


def test_truncated_catches_real_answers_cut_at_a_token_limit():
    # GPT-4's complete answers cut at a random point, as a max_tokens limit cuts them.
    rng = random.Random(0)
    answers = [r["output"] for r in _records("gpt4") if len(r["output"]) >= 300]
    cuts = [a[: rng.randrange(200, len(a) - 20)].rstrip() for a in answers]
    recall = sum(S.is_truncated(c, None, 6) for c in cuts) / len(cuts)
    print(f"\ntruncated: {len(cuts)} real answers cut at random points: recall {recall:.3f}")
    assert recall >= 0.7
    assert S.is_truncated("A complete sentence.", "length", 6)  # the API said so


def test_malformed_reasons_on_labelled_real_answers(signal_db):
    db, _ = signal_db
    reasons = _flags(db, "malformed_reason")
    for (name, index), reason in MALFORMED.items():
        if name == "alpaca_5000":
            prompt_record = _records(name)[index]
            got = S.malformed_reason(prompt_record["instruction"], prompt_record["output"], S.SignalParams())
        else:
            got = reasons[(name, index)]
        assert got == reason, (name, index, got)
    for name, index in NOT_MALFORMED:
        if name == "alpaca_5000":
            got = S.malformed_reason("", _records(name)[index]["output"], S.SignalParams())
        else:
            got = reasons[(name, index)]
        assert got is None, (name, index, got)
    # GPT-4's 805 answers hold no malformed one; Alpaca's 5,000 only its known defects:
    # 2 <nooutput>, 2 <noinput>, 1 "No Output", 4 next instructions run into the answer.
    assert sum(1 for (m, _), v in reasons.items() if m == "gpt4" and v) == 0
    alpaca = [
        S.malformed_reason(r["instruction"], r["output"], S.SignalParams())
        for r in _records("alpaca_5000")
        if r["output"]
    ]
    assert sorted(r for r in alpaca if r) == ["merged_turns"] * 4 + ["placeholder"] * 5


def test_short_counts_words_in_every_script(signal_db):
    db, _ = signal_db
    # P3 answers are labels ("No<|endoftext|>"); OpenAssistant's Chinese answers are long.
    t0 = query(
        db,
        "SELECT count(*) FILTER (WHERE short), count(*) FROM pairs_view "
        "WHERE source LIKE 'paws%' OR source LIKE 'commonsense%'",
    )[0]
    assert t0[0] == t0[1] > 300
    zh = query(db, "SELECT count(*) FILTER (WHERE short), count(*), min(n_words) FROM pairs_view WHERE lang = 'zh'")[0]
    assert zh[1] >= 5 and zh[0] == 0, zh
    assert S.count_words("- a\n- b c") == 3 and S.count_words("你说的很有道理") == 7
    assert S.count_words("Vertebrate.") == 1 and S.count_words("*** —") == 0


def test_lang_on_labelled_multilingual_answers(signal_db):
    db, _ = signal_db
    trees = [json.loads(line) for line in (DATA / "oasst2_filtered.jsonl").read_text().splitlines()]
    rows = query(db, "SELECT line, lang FROM pairs_view WHERE source = 'oasst2_filtered'")
    labelled = [(trees[line - 1]["prompt"]["lang"].split("-")[0], lang) for line, lang in rows]
    decided = [(truth, lang) for truth, lang in labelled if lang is not None]
    accuracy = sum(t == p for t, p in decided) / len(decided)
    coverage = len(decided) / len(labelled)
    print(
        f"\nlang: {len(labelled)} OpenAssistant answers in {len({t for t, _ in labelled})} languages: "
        f"accuracy {accuracy:.3f} where decided, decided for {coverage:.3f}"
    )
    assert accuracy >= 0.95 and coverage >= 0.85
    assert language.identify(["Yes.", "```python\nprint(1)\n```"], 20, 0.5) == [None, None]


def test_vectorised_language_scores_equal_py3langid():
    from py3langid.langid import MODEL_FILE, LanguageIdentifier

    reference = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    reference.set_languages(language.languages())
    texts = [language.prepare(r["output"]) for r in _records("guanaco-7b")[:300]]
    texts += ["", "1234", "HELLO WORLD IN CAPITALS", "Das ist ein deutscher Satz über Sprachen."]
    labels, probabilities = language.probabilities(texts)
    for text, row in zip(texts, probabilities):
        code, probability = reference.classify(text)
        assert labels[row.argmax()] == code or abs(row.max() - probability) < 1e-4
        assert abs(row.max() - probability) < 1e-4


def test_pii_on_real_and_constructed_texts(signal_db):
    db, _ = signal_db
    pii = _flags(db, "pii_kinds")
    assert pii[("gpt4", 708)] == "phone"  # "Call us at 650-636-4884" in a real prompt
    assert sum(1 for v in pii.values() if v) <= 12  # 6,440 AlpacaEval pairs: a handful
    real_positive = [
        "Sure. Email mike@robertlight.com for details.",
        "Call +1 917-444-6321 today.",
        "reach me at tana.schiewer@gmail.com",
        "My number is (773)957-5951",
    ]
    real_negative = [
        "server.login('you@example.com', pw)",
        "Write to jane@domain.com or doe@domain.com",
        "@app.route('/')\ndef index():",
        "ISBN 978-0-306-40615-7, published 2023-01-15",
        "git clone git@github.com:org/repo.git",
        "logo@2x.png",
        "Call 555-123-4567 (fictional)",
        "aws_access_key_id = AKIAIOSFODNN7EXAMPLE",
        "OPENAI_API_KEY=sk-xxxxxxxxxxxxxxxxxxxxxxxx",
    ]
    assert all(S.pii_kinds(t) for t in real_positive)
    assert not any(S.pii_kinds(t) for t in real_negative)
    assert S.pii_kinds("key AKIA2E0A8F3B244C9986 and ghp_R7tK2mQ9xL4vB8nW1cZ5pH3jD6fG0sY2aE4u") == [
        "aws_key",
        "github_token",
    ]
    assert S.pii_kinds("export OPENAI_API_KEY=sk-proj-4fT9xQ2LmZ8vB7nR1kW3pY6dH0sJ5gC") == ["openai_key"]
    assert S.pii_kinds("-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXk=") == ["private_key"]


def test_token_counts_match_llama_cpp_under_the_chat_template(signal_db):
    from llama_cpp import Llama

    db, _ = signal_db
    tokenizer = chat_tokens.load()
    reference = Llama(model_path=str(chat_tokens.bundled_gguf()), vocab_only=True, verbose=False)
    rows = query(
        db,
        "SELECT prompt, response, messages, n_tokens FROM pairs_view "
        "WHERE messages IS NOT NULL OR line % 50 = 0 ORDER BY id LIMIT 400",
    )
    multi_turn = 0
    for prompt, response, messages, n_tokens in rows:
        rendered = tokenizer.render(chat_tokens.conversation(prompt, response, messages))
        assert rendered.startswith("<|im_start|>system\n") and rendered.endswith("<|im_end|>\n")
        assert n_tokens == len(reference.tokenize(rendered.encode(), add_bos=False, special=True))
        if messages:  # the whole conversation counts, not only its last exchange
            multi_turn += 1
            assert n_tokens > tokenizer.count([chat_tokens.conversation(prompt, response, None)])[0]
    assert multi_turn > 20
    over = query(
        db,
        "SELECT count(*) FILTER (WHERE over_length <> (n_tokens > 2048)), "
        "count(*) FILTER (WHERE over_length) FROM pairs_view",
    )[0]
    assert over[0] == 0 and over[1] > 0


def test_pairs_view_columns_and_the_recorded_run(signal_db):
    db, report = signal_db
    total = query(db, "SELECT count(*) FROM pairs")[0][0]
    nulls = query(
        db,
        "SELECT count(*) FILTER (WHERE refusal IS NULL OR short IS NULL OR truncated IS NULL "
        "OR malformed IS NULL OR pii IS NULL OR n_words IS NULL OR n_tokens IS NULL "
        "OR over_length IS NULL), count(*) FILTER (WHERE malformed <> (malformed_reason IS NOT NULL)), "
        "count(*) FILTER (WHERE pii <> (pii_kinds IS NOT NULL)), count(lang) FROM pairs_view",
    )[0]
    assert report.computed == total and nulls[:3] == (0, 0, 0) and nulls[3] > total * 0.7
    run = query(
        db,
        "SELECT r.params, j.kind, j.status FROM signal_runs r JOIN jobs j ON j.id = r.job_id WHERE r.id = ?",
        [report.run_id],
    )[0]
    assert json.loads(run[0]) == json.loads(S.SignalParams().to_json()) and run[1:] == ("signals", "done")
    assert report.summary["counts"]["refusal"] == query(db, "SELECT count(*) FROM pairs_view WHERE refusal")[0][0]


@pytest.mark.slow
def test_rerun_is_incremental_a_new_threshold_recomputes_and_a_crash_resumes(tmp_path, curator):
    db = curator.db
    curator("ingest", EVAL / "guanaco-7b" / "model_outputs.json")

    class Crash(Exception):
        pass

    def crash_after_first_batch(done, total, message):
        if done >= 600:  # after the first batch's commit, inside the second's transaction
            raise Crash()

    with pytest.raises(Crash):
        compute_signals(storage.Database(db), progress=crash_after_first_batch, batch_size=300)
    assert query(db, "SELECT count(*) FROM signals")[0][0] == 300  # the committed batch survived
    assert query(db, "SELECT status FROM jobs ORDER BY id DESC LIMIT 1")[0][0] == "failed"
    resumed = compute_signals(storage.Database(db), batch_size=300)
    assert (resumed.computed, resumed.already) == (505, 300)

    curator("ingest", EVAL / "falcon-7b-instruct" / "model_outputs.json")
    again = curator.json("signals")
    assert (again["computed"], again["already"]) == (805, 805)
    assert curator.json("signals")["computed"] == 0

    shorter = curator.json("signals", "--short-words", "3", "--max-tokens", "256")
    assert shorter["computed"] == 1610 and shorter["params"]["short_words"] == 3
    assert shorter["counts"]["short"] < again["counts"]["short"]
    assert shorter["counts"]["over_length"] > again["counts"]["over_length"]
    runs = query(db, "SELECT params FROM signal_runs ORDER BY id")
    assert len(runs) == 5 and json.loads(runs[-1][0])["max_tokens"] == 256
    # pairs_view shows the latest thresholds' verdicts, one row per pair
    assert query(db, "SELECT count(*), count(DISTINCT id) FROM pairs_view")[0] == (1610, 1610)
    assert query(db, "SELECT count(*) FROM pairs_view WHERE short")[0][0] == shorter["counts"]["short"]


def test_cli_prints_counts_and_thresholds(curator):
    curator("ingest", EVAL / "gpt4_gamed" / "model_outputs.json")
    out = curator("signals").output
    for word in (
        "refusal",
        "short",
        "truncated",
        "malformed",
        "pii",
        "over_length",
        "thresholds: short_words=5",
        "max_tokens=2048",
        "tokenizer=SmolLM2-135M-Instruct",
        "lang: ",
    ):
        assert word in out, word
    assert "already current" in out
    bad = curator("signals", "--tokenizer", "/nonexistent/model.gguf", ok=False)
    assert bad.exit_code != 0 and "no GGUF file" in bad.output


@needs_data
def test_a_flag_defined_in_one_place_reaches_storage_the_cli_the_app_and_the_keeper_choice(
    curator, monkeypatch, tmp_path
):
    """Adding a signal touches curator/signals.py only: a toy flag registered there gets its
    column in `signals` and pairs_view, its line in `curator signals`, a place among the map's
    colour choices, a share in the blob report and its weight in a duplicate set's keep choice."""
    from curator.duplicates import penalties
    from curator.signals import FLAGS, Flag, blob_flags
    from storage import browse
    from storage import duplicates as dup_rows

    shouting = Flag(
        "shouting",
        "response in capitals, over {short_words} words",
        lambda pair, params: pair.response.isupper() and pair.words >= params.short_words,
        penalty=16,
        blob_share=True,
    )
    monkeypatch.setitem(FLAGS, shouting.name, shouting)
    records = json.loads((DATA / "alpaca_5000.json").read_text())[:40]
    records[3]["output"] = "THIS ANSWER IS WRITTEN ENTIRELY IN CAPITAL LETTERS, AS IF SHOUTING."
    records[4]["output"] = records[3]["output"].lower()  # not shouting
    path = tmp_path / "alpaca.json"
    path.write_text(json.dumps(records))
    curator("ingest", path)

    out = curator("signals").output
    assert "shouting" in out and "response in capitals, over 5 words" in out
    rows = query(curator.db, "SELECT response, shouting FROM pairs_view WHERE shouting IS NOT NULL")
    assert len(rows) == 40 and [r for r, flagged in rows if flagged] == [records[3]["output"]]
    assert "shouting" in browse.signal_columns() and "shouting" in blob_flags()
    assert penalties()["shouting"] == 16
    with storage.Database(curator.db).reading() as con:
        live = dup_rows.live_pairs(con)
    assert live["shouting"].sum() == 1
    assert curator.json("signals")["counts"]["shouting"] == 1  # a rerun: already current, counted


@pytest.mark.slow
def test_any_hugging_face_tokenizer_directory_counts_whole_texts():
    # The bundled all-MiniLM-L6-v2 folder: a local tokenizer with no chat template, set to
    # truncate at 128 tokens, which a count must not inherit.
    from curator.embedding import bundled_model_path

    tokenizer = chat_tokens.load(str(bundled_model_path()))
    assert tokenizer.name.endswith("(no chat template: ChatML)")
    conversation = chat_tokens.conversation("Summarise this.", "word " * 500, None)
    assert tokenizer.render(conversation).startswith("<|im_start|>user\nSummarise this.<|im_end|>")
    assert tokenizer.count([conversation])[0] > 500
