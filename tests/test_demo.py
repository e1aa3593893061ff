"""`curator demo`: the shipped SmolLM2-generated demo set, ingested and mapped offline."""

from __future__ import annotations

import hashlib
import json
import shutil
import struct
from pathlib import Path

import pytest

import storage
from curator import chat, demo, llm_server
from jobs import demo as demo_job
from jobs import operations
from jobs.demo import DEMO_FILE, MANIFEST
from jobs.export import ExportOptions, export
from tests.conftest import Curator, copy_to, query, run_console

SOURCES = {"demo-howto", "demo-explain", "demo-creative", "demo-classify", "demo-identity", "demo-sensitive"}
# What a refusal or an AI disclaimer opens with, in the model's own words (checked by hand
# against the shipped answers; curator's `signals` command has the full rules).
REFUSAL = (
    "response ILIKE 'I''m sorry%' OR response ILIKE 'I am sorry%' OR response ILIKE 'I cannot%' "
    "OR response ILIKE 'I can''t%' OR response ILIKE '%as an ai%' OR response ILIKE '%I''m not able to%'"
)


@pytest.fixture(scope="module")
def manifest() -> dict:
    return json.loads(MANIFEST.read_text())


@pytest.fixture(scope="module")
def demo_db(demo_built, tmp_path_factory):
    """A copy of the session's `curator demo` database (tests here run `demo` on it again), and
    what the first `curator demo` printed."""
    template, printed = demo_built
    return copy_to(template, tmp_path_factory.mktemp("demo") / "demo.duckdb"), printed


def _json(db, *args):
    result = run_console("--db", db, *args, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_shipped_file_matches_its_manifest_and_the_prompt_lists(manifest):
    assert hashlib.sha256(DEMO_FILE.read_bytes()).hexdigest() == manifest["sha256"]
    assert manifest["file"] == DEMO_FILE.name and manifest["bytes"] == DEMO_FILE.stat().st_size
    # The prompts in curator/demo.py are the ones the shipped answers were generated from:
    # change them and scripts/make_demo_set.py must be run again.
    assert manifest["prompts_sha256"] == demo.prompts_sha256(demo.sources())
    assert set(manifest["sources"]) == SOURCES
    assert manifest["generator"]["model"] == "SmolLM2-135M-Instruct"
    assert manifest["pairs"] == sum(s["pairs"] for s in manifest["sources"].values()) >= 2400


@pytest.mark.slow
def test_demo_builds_the_database_and_its_map(demo_db, manifest):
    db, out = demo_db
    stats = _json(db, "stats")
    assert stats["pairs"] == manifest["pairs"]
    assert {k: v for k, v in stats["sources"].items()} == {k: v["pairs"] for k, v in manifest["sources"].items()}
    assert f"{stats['pairs']:,} pairs from 6 sources" in out
    assert f"map prompt: {stats['pairs']:,} points fitted" in out
    mapped = _json(db, "sql", "SELECT count(*) AS n FROM pairs_view WHERE x IS NOT NULL AND topic IS NOT NULL")
    assert mapped == [{"n": stats["pairs"]}]
    # The few-shot classification blob (one-word answers to templated questions, like GPT4All's
    # P3) lands in clusters of its own: nearly all of it sits in clusters that are nearly all
    # classification (purity, not exact disjointness: a stray cluster may mix; here the
    # mammal/bird/fish questions share one with a few how-to prompts, 24 of 30).
    rows = _json(
        db,
        "sql",
        "SELECT cluster, count(*) AS n, count(*) FILTER (WHERE source = 'demo-classify') AS s "
        "FROM pairs_view WHERE cluster >= 0 GROUP BY 1",
    )
    blob = sum(r["s"] for r in rows)
    in_pure_clusters = sum(r["s"] for r in rows if r["s"] >= 0.9 * r["n"])
    assert blob > 0.9 * stats["sources"]["demo-classify"] and in_pure_clusters >= 0.9 * blob


@pytest.mark.slow
def test_demo_again_changes_nothing(demo_db):
    db, _ = demo_db
    before = _json(db, "sql", "SELECT id, x, y, cluster FROM pairs_view ORDER BY id")
    again = run_console("--db", db, "demo")
    assert again.returncode == 0
    assert "already ingested, nothing to do" in again.stdout and "0 placed without refitting" in again.stdout
    assert _json(db, "sql", "SELECT id, x, y, cluster FROM pairs_view ORDER BY id") == before


@pytest.mark.slow
def test_demo_set_holds_what_curation_is_for(demo_db, manifest):
    db, _ = demo_db
    (row,) = _json(
        db,
        "sql",
        f"""
        SELECT count(*) FILTER (WHERE model = 'SmolLM2-135M-Instruct') AS by_smollm2,
               count(*) FILTER (WHERE finish_reason = 'length') AS truncated,
               count(*) FILTER (WHERE finish_reason IS NULL) AS without_reason,
               count(*) FILTER (WHERE {REFUSAL}) AS refusals,
               count(*) FILTER (WHERE source = 'demo-classify' AND response NOT LIKE '% %') AS one_word,
               count(*) FILTER (WHERE source = 'demo-identity') AS identity,
               count(DISTINCT prompt) FILTER (WHERE source = 'demo-identity') AS identity_questions,
               count(DISTINCT response) FILTER (WHERE source = 'demo-identity') AS identity_answers
        FROM pairs_view""",
    )
    assert row["by_smollm2"] == manifest["pairs"] and row["without_reason"] == 0  # ingest kept both fields
    assert row["truncated"] == manifest["truncated"] > 100  # rambling cut at max_tokens
    assert row["refusals"] >= 20  # refusals and AI disclaimers
    assert row["one_word"] > 0.5 * manifest["sources"]["demo-classify"]["pairs"]  # the one-word blob
    # the identity family: a few questions asked hundreds of times, answered in many ways
    assert row["identity_questions"] <= 16 and row["identity"] >= 300 and row["identity_answers"] > 100


def _gguf_stub(path: Path, size: int) -> None:
    """A GGUF header with no keys and no tensors (the Chat page's finder reads it as a model),
    padded to `size` bytes."""
    header = b"GGUF" + struct.pack("<IQQ", 3, 0, 0)
    path.write_bytes(header + b"\0" * (size - len(header)))


@pytest.mark.slow
def test_demo_full_curates_then_skips_every_finished_stage(demo_db, tmp_path):
    """`curator demo --full`'s own logic on a copy of the demo database: the automatic curation
    for real, then a rerun over a finished loop (export real, run and files stood in for: the
    trainer, quantize and eval have their own tests) that skips every stage and starts no job."""
    db = tmp_path / "full.duckdb"
    shutil.copy(demo_db[0], db)
    stages = []
    made = demo_job.curate(db, stage=lambda name, ran, detail: stages.append((name, ran)))
    assert stages == [
        ("signals", True),
        ("duplicates", True),
        *((f"delete {r.name}", True) for r in demo_job.CURATION),
        ("version", True),
    ]
    # Every rule is one logged delete carrying its reason; together they leave none of what they target.
    log = [op for op in operations.log(db) if op["kind"] == "delete"]
    assert [(op["selector"], op["reason"]) for op in log] == [(r.selector, r.reason) for r in demo_job.CURATION]
    assert all(op["count"] > 0 for op in log) and demo_job.applied_rules(db) == {
        r.name: op["id"] for r, op in zip(demo_job.CURATION, log)
    }
    (left,) = query(
        db,
        "SELECT count(*) FILTER (WHERE NOT deleted), count(*) FILTER (WHERE NOT deleted AND (refusal "
        "OR malformed OR (dup_group IS NOT NULL AND NOT dup_keep) OR source = 'demo-classify')), "
        "count(*) FROM pairs_view",
    )
    assert (
        left[1] == 0
        and made["name"] == demo_job.VERSION
        and made["pairs"] == left[0] == left[2] - sum(op["count"] for op in log)
    )
    assert 1500 < made["pairs"] < 2100  # the measured run: 2,459 - 40 - 47 - 262 - 212 = 1,898

    directory = demo_job.full_dir(db)
    export_dir, run_dir = directory / "export", directory / "run"
    export(storage.Database(db), export_dir, ExportOptions(version=demo_job.VERSION, eval_check=False))
    assert demo_job.export_complete(export_dir)["pairs"]["exported"] == made["pairs"]
    run_dir.mkdir()
    manifest_sha = hashlib.sha256((export_dir / "manifest.json").read_bytes()).hexdigest()
    (run_dir / "train_report.json").write_text(json.dumps({"manifest_sha256": manifest_sha}))
    files, entries = [], {}
    for i, qtype in enumerate(demo_job.QUANT_TYPES):
        out = directory / f"model-{qtype}.gguf"
        _gguf_stub(out, 1000 + i)
        files.append(out)
        entries[out.name] = {
            "path": str(out),
            "run": str(run_dir.resolve()),
            "size_bytes": 1000 + i,
            "ppl_base": 3.0,
            "ppl_tuned": 2.0,
            "ppl_file": 2.1 + i / 10,
            "gain_kept": 0.9 - i / 10,
            "engines": {"base": "torch", "tuned": "torch", "file": "llama.cpp"},
        }
    from jobs.quantize import REPORT_NAME  # loads torch: only here

    assert demo_job.QUANT_REPORT == REPORT_NAME
    (directory / demo_job.QUANT_REPORT).write_text(json.dumps({"files": entries}))
    base = llm_server.bundled_model().resolve()
    models = [base, *files]
    (directory / demo_job.EVAL_FILE).write_text(
        json.dumps(
            {
                "key": demo_job.eval_key(models, export_dir),
                "results": [
                    {"model": str(m), "n": 90, "ppl_tokens": 2.5 - i / 10, "ppl_mean": 3.0}
                    for i, m in enumerate(models)
                ],
            }
        )
    )
    jobs_before = query(db, "SELECT count(*) FROM jobs")

    seen = []
    report = demo_job.run_full(db, notify=seen.append)
    assert [(s.name, s.ran) for s in seen] == [
        ("ingest to version", False),
        ("export", False),
        ("train", False),
        *((f"quantize {t}", False) for t in demo_job.QUANT_TYPES),
        ("eval", False),
    ]
    assert query(db, "SELECT count(*) FROM jobs") == jobs_before
    assert [(r["model"], r["ppl"], r["eval_ppl_tokens"]) for r in report.rows] == [
        ("base", 3.0, None),
        ("tuned (run)", 2.0, None),
        (f"{base.name} (bundled base)", None, 2.5),
        ("model-q8_0.gguf", 2.1, 2.4),
        ("model-q4_1.gguf", 2.2, 2.3),
    ]
    assert json.loads((directory / demo_job.SUMMARY_FILE).read_text())["eval_examples"] == 90
    shown = Curator(db)("demo", "--full").output  # the command: a line per stage, then the table
    assert "train: skipped" in shown and "all 90 examples of export/val.jsonl" in shown
    assert any(
        line.split()[:3] == ["model-q4_1.gguf", "llama.cpp", "0.0"] and "80%" in line for line in shown.splitlines()
    )
    # The Chat page lists the GGUF files under the database's folder: the loop's files are there.
    assert set(files) <= set(chat.find_gguf([db.parent])["model"])
    # A file rewritten after it was measured, or a run finished after it, is measured again.
    _gguf_stub(files[0], 999)
    assert demo_job.quant_entry(run_dir, files[0]) is None and demo_job.quant_entry(run_dir, files[1]) is not None
