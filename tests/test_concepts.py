"""Concepts (`curator concept`) on real model outputs: a refusal concept from 20 labelled refusals.

Three models' AlpacaEval outputs (guanaco-7b, falcon-7b-instruct, llama-2-7b-chat-hf: 2,415
pairs, 66 refusals labelled by reading, bench/labelled_refusals.py), their response openings
embedded with the bundled model (~30 s). The concept is fitted on 20 of the refusals against
random other pairs; the other 46 are held out.
"""

from __future__ import annotations

import random

import numpy as np
import pytest

from bench.labelled_refusals import NOT_REFUSALS, REFUSALS
from curator import concepts
from tests.conftest import DATA, Curator, needs_data, query

pytestmark = needs_data

MODELS = ("guanaco-7b", "falcon-7b-instruct", "llama-2-7b-chat-hf")


@pytest.fixture(scope="module")
def labelled(tmp_path_factory):
    curator = Curator(tmp_path_factory.mktemp("concepts") / "concepts.duckdb")
    for model in MODELS:
        curator("ingest", DATA / "alpaca_eval_results" / model / "model_outputs.json", "--source", model)
    curator("embed", "--field", "opening")
    key = {(source, line - 1): pair for pair, source, line in query(curator.db, "SELECT id, source, line FROM pairs")}
    refusals = sorted(key[(m, i)] for m in MODELS for i in REFUSALS.get(m, []))
    hard_negatives = sorted(key[(m, i)] for m in MODELS for i in NOT_REFUSALS.get(m, []))
    train = sorted(random.Random(0).sample(refusals, 20))
    report = curator.json(
        "concept", "create", "refusal_like", "--positive", ",".join(map(str, train)), "--field", "opening"
    )
    return curator, report, train, [r for r in refusals if r not in train], hard_negatives


@pytest.mark.slow
def test_the_concept_finds_held_out_refusals(labelled):
    curator, report, train, held_out, hard_negatives = labelled
    assert (report["positives"], report["negatives"], report["random_negatives"]) == (20, 200, True)
    assert report["folds"] == 5 and 0 < report["cv_precision"] <= 1 and 0 < report["cv_recall"] <= 1
    scores = dict(query(curator.db, "SELECT id, concept_refusal_like FROM pairs_view"))
    assert len(scores) == 2415 and all(0 <= s <= 1 for s in scores.values())
    found = [scores[i] >= report["threshold"] for i in held_out]
    wrong = [scores[i] >= report["threshold"] for i in hard_negatives]
    # Measured: 70% of the held-out refusals (46 here) at 0.5; hard negatives (sympathy,
    # apologies in role play, "cannot" inside an answer) rarely pass.
    assert np.mean(found) >= 0.55, np.mean(found)
    assert np.mean(wrong) <= 0.15, np.mean(wrong)
    assert report["members"] == sum(s >= report["threshold"] for s in scores.values())
    labels = query(curator.db, "SELECT label, count(*) FROM concept_labels GROUP BY label ORDER BY label")
    assert labels == [(False, 200), (True, 20)]


@pytest.mark.slow
def test_list_replace_and_delete(labelled):
    curator, report, train, held_out, hard_negatives = labelled
    listed = curator.json("concept", "list")
    assert [(c["name"], c["field"], c["positives"]) for c in listed] == [("refusal_like", "opening", 20)]
    # Explicit negatives, selected by SQL, and a second concept: two columns side by side.
    second = curator.json(
        "concept",
        "create",
        "not_llama",
        "--positive",
        "source <> 'llama-2-7b-chat-hf'",
        "--negative",
        "source = 'llama-2-7b-chat-hf'",
        "--field",
        "opening",
    )
    assert (second["positives"], second["negatives"], second["random_negatives"]) == (1610, 805, False)
    assert (
        query(
            curator.db,
            "SELECT count(*) FROM pairs_view WHERE concept_not_llama IS NOT NULL AND concept_refusal_like IS NOT NULL",
        )[0][0]
        == 2415
    )
    curator("concept", "delete", "not_llama")
    columns = [row[0] for row in query(curator.db, "DESCRIBE pairs_view")]
    assert "concept_refusal_like" in columns and "concept_not_llama" not in columns
    assert query(curator.db, "SELECT count(*) FROM concept_scores")[0][0] == 2415


@pytest.mark.slow
def test_bad_input_is_named(labelled):
    curator = labelled[0]
    result = curator("concept", "create", "Bad-Name", "--positive", "1", ok=False)
    assert result.exit_code != 0 and "Bad-Name" in result.output
    pair = str(labelled[2][0])
    result = curator("concept", "create", "x", "--positive", pair, "--negative", pair, "--field", "opening", ok=False)
    assert "both positive and negative" in result.output
    result = curator("concept", "create", "x", "--positive", "source = 'nobody'", "--field", "opening", ok=False)
    assert "chooses no pair" in result.output
    result = curator("concept", "create", "x", "--positive", pair, ok=False)
    assert "curator map" in result.output  # no map, no --field: which embeddings is unclear
    result = curator("concept", "delete", "nothing", ok=False)
    assert "no concept 'nothing'" in result.output


def test_random_negatives_are_seeded_and_exclude_positives():
    candidates = np.arange(1000, 5000)
    first = concepts.random_negatives(candidates, 30, seed=1)
    assert len(first) == 300 and np.array_equal(first, concepts.random_negatives(candidates, 30, seed=1))
    assert set(first) <= set(candidates)
    assert len(concepts.random_negatives(candidates[:50], 30, seed=1)) == 50


@pytest.mark.slow
def test_find_more_like_these_in_the_app(tmp_path_factory, tmp_path, monkeypatch):
    """The map's selection (the identity conversations of the curation set) -> a concept ->
    the map coloured by it; the sample sorted by the new score."""
    from streamlit.testing.v1 import AppTest

    from tests.conftest import ROOT
    from tests.curation_data import IDENTITY, copy_to, mapped_template
    from ui.state import Selection

    db = copy_to(mapped_template(tmp_path_factory), tmp_path / "app.duckdb")
    ids = np.array(sorted(i for (i,) in query(db, "SELECT id FROM pairs WHERE source = ?", [IDENTITY])))
    monkeypatch.setenv("CURATOR_DB", str(db))
    app = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
    app.session_state["selection"] = Selection({"source": IDENTITY}, ids[:40], "the first 40 identity pairs")
    app.run()
    assert not app.exception
    app.text_input(key="concept_name").input("identity_like").run()
    next(b for b in app.button if b.label == "Find more like these").click().run()
    assert not app.exception
    assert any("concept identity_like: 40 positives" in s.value for s in app.success), [s.value for s in app.success]
    scores = dict(query(db, "SELECT id, concept_identity_like FROM pairs_view"))
    held_out = ids[40:]
    assert np.mean([scores[i] >= 0.5 for i in held_out]) > 0.9  # the rest of the blob is found
    others = [s for i, s in scores.items() if i not in set(ids)]
    assert np.mean([s >= 0.5 for s in others]) < 0.05
    colour = app.sidebar.selectbox[1]
    assert "concept_identity_like" in colour.options
    colour.select("concept_identity_like").run()
    assert not app.exception
    app.selectbox(key="sample_order").select("judge_score").run()  # no judge run: unscored, by id
    assert not app.exception
