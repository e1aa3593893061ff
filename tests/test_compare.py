"""`curator compare` on real pairs: the held-out split, the same-size control, three runs of one
recipe, the table, chart and JSON, reruns that skip finished stages, and the Versions page.

One tiny comparison (160 short Alpaca pairs and 60 P3 sentiment pairs; version `curated`
without the P3 ones; 2 LoRA steps at 128 tokens; 4 examples scored per set) is run once for
the module; every test reads it or reruns it.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

import storage
from curator import compare as plan
from storage import compare as compare_rows
from tests.conftest import DATA, Curator, needs_data, query
from tests.test_app import APP
from tests.test_train import short_alpaca, write_jsonl

pytestmark = needs_data

STEPS = 2
P3_FILE = "rotten_tomatoes_Reviewer_Enjoyment.jsonl"  # short review -> "They loved it"


def p3_pairs(n: int) -> list[dict]:
    """n real P3 sentiment pairs, the literal <|endoftext|> their completions end in removed."""
    lines = (DATA / "t0_train_50k_data_per_template" / P3_FILE).read_text().splitlines()
    records = (json.loads(line) for line in lines)
    return [
        {"prompt": r["prompt"], "response": r["completion"].removesuffix("<|endoftext|>").strip(), "source": "p3"}
        for r in records
        if len(r["prompt"]) < 300
    ][:n]


def compare_args(out: Path) -> list:
    return [
        "compare",
        "@all",
        "curated",
        "--steps",
        STEPS,
        "--same-size",
        "--eval-limit",
        4,
        "--max-length",
        128,
        "--eval-set",
        DATA / "user_oriented_instructions.jsonl",
        "--out",
        out,
    ]


def lines_of(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def train_jobs(db: Path) -> int:
    return query(db, "SELECT count(*) FROM jobs WHERE kind = 'train'")[0][0]


@pytest.fixture(scope="module")
def compared(tmp_path_factory):
    """(curator, output directory, the first run's --json output)."""
    root = tmp_path_factory.mktemp("compare")
    curator = Curator(root / "compare.duckdb")
    write_jsonl(root / "alpaca.jsonl", short_alpaca(160))
    write_jsonl(root / "p3.jsonl", p3_pairs(60))
    curator("ingest", root / "alpaca.jsonl", "--source", "alpaca")
    curator("ingest", root / "p3.jsonl")
    curator("delete", "--source", "p3", "--reason", "one-word templated answers")
    curator("version", "create", "curated")
    out = root / "out"
    return curator, out, curator.json(*compare_args(out))


def ran(result: dict) -> set[str]:
    return {stage["name"] for stage in result["stages"] if stage["ran"]}


@pytest.mark.slow
def test_the_held_out_split_and_the_same_size_control(compared):
    curator, out, _ = compared
    data = out / "data"
    heldout = lines_of(data / "heldout.jsonl")
    trained = {key: lines_of(data / f"train-{key}.jsonl") for key in (plan.A, plan.B, plan.A_SAME_SIZE)}
    assert heldout == lines_of(out / "export-b" / "val.jsonl") and len(heldout) >= 4
    held_prompts = {r["prompt"].strip().lower() for r in heldout}
    for records in trained.values():
        assert not held_prompts & {r["prompt"].strip().lower() for r in records}
    # A is every pair ever ingested (the deleted P3 ones too) less the held-out ones.
    assert len(trained[plan.A]) == 220 - len(heldout)
    assert sum(r["source"] == "p3" for r in trained[plan.A]) == 60
    assert not any(r["source"] == "p3" for r in trained[plan.B])
    # The control: as many pairs as B's file, drawn from A's, none twice.
    control = [json.dumps(r, sort_keys=True) for r in trained[plan.A_SAME_SIZE]]
    assert len(control) == len(trained[plan.B]) == len(set(control))
    assert set(control) <= {json.dumps(r, sort_keys=True) for r in trained[plan.A]}
    assert any(r["source"] == "p3" for r in trained[plan.A_SAME_SIZE])


@pytest.mark.slow
def test_three_runs_of_one_recipe_and_the_table(compared):
    curator, out, printed = compared
    configs = {
        key: json.loads((out / "runs" / key / "train_config.json").read_text())
        for key in (plan.A, plan.B, plan.A_SAME_SIZE)
    }
    assert len(configs) == 3
    for config in configs.values():
        assert config["max_steps"] == STEPS and config["seed"] == 42 and config["max_length"] == 128
        assert config["val"] == str(out / "data" / "heldout.jsonl")
    differing = {k for config in configs.values() for k, v in config.items() if v != configs[plan.A][k]}
    assert differing == {"data"}

    rows = printed["rows"]
    assert [r["key"] for r in rows] == [plan.BASE, plan.A, plan.B, plan.A_SAME_SIZE]
    assert [r["model"] for r in rows][1:] == ["@all", "curated", "@all (same size as curated)"]
    assert rows[0]["pairs"] is None and rows[0]["eval_gain"] == 0 and rows[0]["heldout_gain"] == 0
    for row in rows[1:]:
        assert row["steps"] == STEPS and row["tokens"] > 0 and row["pairs"] > 0
        assert row["eval_ppl"] > 1 and row["heldout_ppl"] > 1
        assert row["heldout_gain"] == pytest.approx(1 - row["heldout_ppl"] / rows[0]["heldout_ppl"])
    assert {(t["x"], t["y"]) for t in printed["tests"]} == {
        ("curated", "@all"),
        ("curated", "@all (same size as curated)"),
        ("@all (same size as curated)", "@all"),
    }
    assert all(t["low"] <= t["ratio"] <= t["high"] and t["examples"] == 4 for t in printed["tests"])

    result = json.loads((out / "compare.json").read_text())
    assert result == printed and result["set_names"] == {"eval": "Self-Instruct", "heldout": "held-out"}
    assert (out / "compare.png").read_bytes().startswith(b"\x89PNG")
    assert result["versions"]["a"]["pairs"] == 220 and result["versions"]["b"]["pairs"] == 160


@pytest.mark.slow
def test_all_is_kept_as_a_version_and_remade_when_pairs_change(compared):
    curator, _, _ = compared
    listed = {v["name"]: v for v in curator.json("version", "list")}
    assert listed["@all"]["pairs"] == 220 and "curator compare" in listed["@all"]["note"]

    def snapshot(name: str) -> dict:
        con = storage.connect(curator.db)
        try:
            return compare_rows.snapshot(con, name)
        finally:
            con.close()

    assert snapshot("@all")["id"] == listed["@all"]["id"]  # the same pairs: the same version
    live = snapshot("@live")
    assert live["pairs"] == 160
    curator("restore", "--source", "p3")
    restored = snapshot("@live")
    assert restored["pairs"] == 220 and restored["id"] != live["id"]
    curator("undo")
    assert snapshot("@live")["pairs"] == 160 and snapshot("@all")["id"] == listed["@all"]["id"]


def test_a_reserved_name_taken_by_hand_is_refused(curator, tmp_path):
    write_jsonl(tmp_path / "two.jsonl", short_alpaca(2))
    curator("ingest", tmp_path / "two.jsonl")
    curator("version", "create", "@all")
    refused = curator(
        "compare",
        "@all",
        "@all",
        "--eval-set",
        DATA / "user_oriented_instructions.jsonl",
        "--out",
        tmp_path / "out",
        ok=False,
    )
    assert refused.exit_code == 1 and "made by hand" in refused.output
    unknown = curator(
        "compare",
        "@live",
        "v9",
        "--eval-set",
        DATA / "user_oriented_instructions.jsonl",
        "--out",
        tmp_path / "out",
        ok=False,
    )
    assert "no version 'v9'" in unknown.output


@pytest.mark.slow
def test_a_rerun_skips_every_stage(compared):
    curator, out, printed = compared
    assert len(printed["stages"]) == 2 + 1 + 3 + 8 and ran(printed) == {s["name"] for s in printed["stages"]}
    before = train_jobs(curator.db)
    rerun = curator.json(*compare_args(out))
    assert rerun["rows"] == printed["rows"]
    assert train_jobs(curator.db) == before
    assert len(rerun["stages"]) == len(printed["stages"]) and ran(rerun) == set()
    text = curator(*compare_args(out)).output
    assert text.count(": skipped, ") == len(printed["stages"]) and "Self-Instruct ppl" in text


@pytest.mark.slow
def test_a_lost_run_is_trained_again_and_only_what_depends_on_it(compared):
    """A run whose report is gone (killed before it finished) trains again, resuming in its
    folder; the other runs and the evaluations that do not depend on it are skipped."""
    curator, out, printed = compared
    run = out / "runs" / plan.B
    (run / "train_report.json").unlink()
    shutil.rmtree(out / "runs" / plan.A_SAME_SIZE)
    before = train_jobs(curator.db)
    rerun = curator.json(*compare_args(out))
    assert train_jobs(curator.db) == before + 2
    assert ran(rerun) == {
        "train curated",
        "train @all (same size as curated)",
        "eval curated on Self-Instruct",
        "eval curated on held-out",
        "eval @all (same size as curated) on Self-Instruct",
        "eval @all (same size as curated) on held-out",
    }
    rows = rerun["rows"]
    assert [r["eval_ppl"] for r in rows] == pytest.approx([r["eval_ppl"] for r in printed["rows"]], rel=1e-4)


@pytest.mark.slow
def test_the_versions_page_shows_the_comparison(compared, monkeypatch):
    curator, out, _ = compared
    con = storage.connect_read_only(curator.db)
    try:
        latest = compare_rows.finished(con)[0]
    finally:
        con.close()
    assert latest["params"]["out"] == str(out) and latest["counts"]["rows"][0]["key"] == plan.BASE
    monkeypatch.setenv("CURATOR_DB", str(curator.db))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("ui/versions_page.py").run()
    assert not app.exception
    assert "Comparisons" in [h.value for h in app.subheader]
    table = app.dataframe[-1].value
    assert list(table["model"]) == [r["model"] for r in latest["counts"]["rows"]]
    assert any("curated vs @all" in c.value for c in app.caption)


def test_same_size_subset_and_paired_difference():
    picked = plan.same_size_subset(10, 4, seed=42)
    assert len(set(picked)) == 4 and list(picked) == sorted(picked)
    assert list(plan.same_size_subset(10, 4, seed=42)) == list(picked)
    with pytest.raises(ValueError, match="fewer than B.s 4"):
        plan.same_size_subset(3, 4, seed=42)
    better = plan.paired_difference([1.0, 1.1, 0.9, 1.0], [1.2, 1.3, 1.1, 1.2], seed=0)
    assert better["ratio"] == pytest.approx(np.expm1(-0.2)) and better["high"] < 0
    assert "is better" in plan.verdict({"x": "b", "y": "a", "set": "s", **better})
    noise = plan.paired_difference([1.0, 1.2, 0.8, 1.0], [1.1, 1.0, 1.0, 0.9], seed=0)
    assert noise["low"] < 0 < noise["high"]
    assert "no difference" in plan.verdict({"x": "b", "y": "a", "set": "s", **noise})


def test_the_versions_page_without_comparisons_says_how_to_make_one(curator, tmp_path, monkeypatch):
    write_jsonl(tmp_path / "two.jsonl", short_alpaca(2))
    curator("ingest", tmp_path / "two.jsonl")
    curator("version", "create", "v1")
    monkeypatch.setenv("CURATOR_DB", str(curator.db))
    app = AppTest.from_file(APP, default_timeout=60).run()
    app.switch_page("ui/versions_page.py").run()
    assert not app.exception
    assert list(app.dataframe[0].value["name"]) == ["v1"]
    assert "curator compare @all VERSION --same-size" in app.info[-1].value
