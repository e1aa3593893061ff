"""IFD (`curator quality ifd`) on real pairs: the encoding, the scores by source, resume.

40 Alpaca pairs (varied answers) and 40 P3 pairs of one extractive-QA template
(adversarial_qa "based on": the answer is a span copied from the prompt's context), scored with
the bundled SmolLM2 at --max-length 256 in two jobs (--limit, then the rest).
"""

from __future__ import annotations

import json

import pytest

from curator import chat_tokens, quality, training
from tests.conftest import DATA, needs_data, query

pytestmark = needs_data

P3 = "t0_train_50k_data_per_template/adversarial_qa_dbert_based_on.jsonl"


@pytest.fixture(scope="module")
def tokenizer():
    return chat_tokens.transformers_tokenizer(None)


def _response_tokens(encoded: training.Encoded) -> list[int]:
    return [label for label in encoded.labels[1:] if label != training.IGNORE]


def test_both_encodings_score_the_same_response_text_tokens(tokenizer):
    template = training.chat_template(tokenizer, "model")
    response = "the Treatise Concerning the Principles of Human Knowledge<|endoftext|>"
    given, alone = quality.encode_pair(
        "Who wrote what?\nContext: " + "Berkeley wrote. " * 20, response, tokenizer, template, 512
    )
    assert _response_tokens(given) == _response_tokens(alone)
    special = set(tokenizer.all_special_ids)
    assert _response_tokens(given) and not special & set(_response_tokens(given))
    # A prompt that pushes the response past max_length: the alone-encoding keeps as many
    # response tokens as fit after the prompt, the same ones.
    whole, _ = quality.encode_pair("word " * 100, response, tokenizer, template, 512)
    first = next(t for t, label in enumerate(whole.labels) if label != training.IGNORE)
    given, alone = quality.encode_pair("word " * 100, response, tokenizer, template, first + 4)
    kept = _response_tokens(given)
    assert len(kept) == 4 and kept == _response_tokens(whole)[:4]
    assert _response_tokens(alone) == kept


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A database of 40 Alpaca + 40 P3 pairs, IFD-scored in two jobs."""
    from tests.conftest import Curator

    folder = tmp_path_factory.mktemp("ifd")
    alpaca = folder / "alpaca.json"
    alpaca.write_text(json.dumps(json.loads((DATA / "alpaca_5000.json").read_text())[:40]))
    p3 = folder / "p3_qa.jsonl"
    p3.write_text("".join((DATA / P3).read_text().splitlines(keepends=True)[:40]))
    curator = Curator(folder / "ifd.duckdb")
    curator("ingest", alpaca, p3)
    first = curator.json("quality", "ifd", "--limit", 30, "--max-length", 256)
    second = curator.json("quality", "ifd", "--max-length", 256)
    third = curator.json("quality", "ifd", "--max-length", 256)
    return curator.db, first, second, third


@pytest.mark.slow
def test_a_rerun_scores_only_what_is_left(scored):
    db, first, second, third = scored
    assert (first["scored"], first["already"], first["left"]) == (30, 0, 50)
    assert (second["scored"], second["already"], second["left"]) == (50, 30, 0)
    assert (third["scored"], third["already"]) == (0, 80)
    assert first["run_id"] == second["run_id"] == third["run_id"]
    assert query(db, "SELECT count(*), count(DISTINCT pair_id) FROM pair_ifd")[0] == (80, 80)
    jobs = query(db, "SELECT status, counts FROM jobs WHERE kind = 'ifd' ORDER BY id")
    assert [status for status, _ in jobs] == ["done"] * 3 and json.loads(jobs[1][1])["scored"] == 50


@pytest.mark.slow
def test_ifd_is_the_ratio_of_the_stored_losses_and_lower_for_the_extractive_template(scored):
    db = scored[0]
    # P3's contexts can push the answer past --max-length 256: such pairs are stored with no
    # tokens and no scores (so that a rerun does not try them again), and counted.
    unscorable = query(db, "SELECT count(*) FROM pair_ifd WHERE tokens = 0 AND ifd IS NULL")[0][0]
    assert unscorable == scored[1]["unscorable"] + scored[2]["unscorable"] < 15
    rows = query(db, "SELECT source, ifd, loss_given_prompt, loss_alone FROM pairs_view WHERE ifd IS NOT NULL")
    assert len(rows) == 80 - unscorable
    assert all(abs(ifd - given / alone) < 1e-9 and given > 0 and alone > 0 for _, ifd, given, alone in rows)
    mean = {
        source: sum(r[1] for r in rows if r[0] == source) / sum(r[0] == source for r in rows)
        for source in ("alpaca", "p3_qa")
    }
    # The answer is a span of the prompt's context: the prompt predicts it far better than
    # Alpaca's prompts predict their varied answers (measured 0.50 vs 0.70 on 60/150 pairs).
    assert mean["p3_qa"] < mean["alpaca"] - 0.1, mean
    by_source = {s["source"]: s for s in scored[1]["by_source"] + scored[2]["by_source"]}
    assert set(by_source) == {"alpaca", "p3_qa"}


@pytest.mark.slow
def test_a_gguf_file_scores_through_llama_cpp_as_a_run_of_its_own(scored):
    from tests.conftest import Curator

    db, first = scored[0], scored[1]
    gguf = str(chat_tokens.bundled_gguf())
    report = Curator(db).json("quality", "ifd", "--model", gguf, "--limit", 4, "--max-length", 256)
    assert report["run_id"] != first["run_id"] and report["scored"] == 4 and report["model"] == gguf
    rows = query(
        db,
        "SELECT g.ifd, t.ifd FROM pair_ifd g JOIN pair_ifd t USING (pair_id) "
        "WHERE g.run_id = ? AND t.run_id = ? AND g.ifd IS NOT NULL",
        [report["run_id"], first["run_id"]],
    )
    # The Q4_1 file and the dequantized float32 model are the same network, near enough.
    assert rows and all(abs(q - f) < 0.15 for q, f in rows), rows
    # pairs_view shows the latest run: the file's four pairs.
    assert query(db, "SELECT count(*) FROM pairs_view WHERE ifd IS NOT NULL")[0][0] == len(rows)
