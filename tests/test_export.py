"""Export on real data: every format reads back as the same pairs, the same version and seed
give byte-identical files, the split keeps near-duplicates on one side and every cluster in
proportion, and the Self-Instruct evaluation prompts planted into the data are found and removed.

The world: the session's mapped Code Alpaca + FastChat identity database (tests/curation_data.py;
the identity conversations are real multi-turn ShareGPT records) copied with its vectors, plus
planted pairs placed on the map; then `curator signals` and `curator duplicates` as a user
would run them.
"""

from __future__ import annotations

import collections
import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import orjson
import pytest

import curator
import storage
from curator import chat_tokens, evalset, formats, training_set
from tests import curation_data
from tests.conftest import DATA, Curator, needs_data, query

EVAL_FILE = DATA / "user_oriented_instructions.jsonl"
PLANTED_ANSWER = "Here is a careful answer to that request."


# --- the planted pairs -------------------------------------------------------------------------


def _please(prompt: str) -> str:
    return "Please " + prompt[0].lower() + prompt[1:]


def _last_word_changed(prompt: str) -> str:
    return prompt.rsplit(" ", 1)[0] + " something"


def planted_rows(code_prompts: list[str]) -> dict[str, list[dict]]:
    """{source: records}. Eval prompts: exact copies, copies equal once normalized, light edits
    (cosine >= 0.93 under the default model), and a control that shares an eval prompt's first
    70 characters but asks something else (cosine ~0.6: must stay). Near-duplicates of the
    first 20 code_prompts: respaced upper-case twins of 10 (same normalized prompt) and
    "Please ..." paraphrases of 10 (the same request), each with another answer."""
    evals = evalset.read_prompts(EVAL_FILE)

    def rows(prompts, answer=PLANTED_ANSWER):
        return [{"prompt": p, "response": answer} for p in prompts]

    return {
        "planted-eval-exact": rows([evals[10], evals[90], evals[50].upper().replace(" ", "  ")]),
        "planted-eval-near": rows([_please(evals[40]), _last_word_changed(evals[120]), _please(evals[160])]),
        "planted-eval-control": rows(
            [
                evals[200][:70] + " Write a Python function that reverses a linked list "
                "and explain its complexity in detail."
            ]
        ),
        "planted-dup": [
            {"prompt": p.upper().replace(" ", "  "), "response": f"Twin answer {i}."}
            for i, p in enumerate(code_prompts[:10])
        ]
        + [{"prompt": _please(p), "response": f"Paraphrase answer {i}."} for i, p in enumerate(code_prompts[10:])],
    }


def write_planted(folder: Path, code_prompts: list[str]) -> Path:
    path = folder / "planted.jsonl"
    with open(path, "wb") as out:
        for source, records in planted_rows(code_prompts).items():
            for record in records:
                out.write(orjson.dumps({**record, "source": source}) + b"\n")
    return path


# --- fixtures ----------------------------------------------------------------------------------


def copy_world(source: Path, db: Path) -> Path:
    """A private copy of a database together with its vectors (this copy may embed more)."""
    shutil.copyfile(source, db)
    shutil.copytree(f"{source}.vectors", f"{db}.vectors")
    con = storage.connect(db)
    try:
        con.execute(
            "UPDATE embedding_sets SET directory = replace(directory, ?, ?)", [f"{source}.vectors", f"{db}.vectors"]
        )
    finally:
        con.close()
    return db


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> Path:
    if not DATA.exists():
        pytest.skip("needs ../shared/data")
    template = curation_data.mapped_template(tmp_path_factory)
    folder = tmp_path_factory.mktemp("export-world")
    db = copy_world(template, folder / "world.duckdb")
    code_prompts = [
        r[0]
        for r in query(
            db,
            "SELECT prompt FROM pairs WHERE source = ? AND length(prompt) > 40 "
            "AND messages IS NULL ORDER BY id LIMIT 20",
            [curation_data.CODE],
        )
    ]
    run = Curator(db)
    run("ingest", write_planted(folder, code_prompts))
    run("map")  # places the new pairs: every pair has a stored prompt vector and a cluster
    run("signals")
    run("duplicates")
    return db


@pytest.fixture
def private(world, tmp_path) -> Path:
    """A copy of the world for a test that changes it."""
    return copy_world(world, tmp_path / "private.duckdb")


def export(db: Path, out: Path, *args: str) -> dict:
    Curator(db)("export", out, *args)
    return json.loads((out / "manifest.json").read_text())


def lines(path: Path) -> list[dict]:
    return [orjson.loads(line) for line in path.read_bytes().splitlines()]


def exported(out: Path, name: str, fmt: str) -> list[formats.Pair]:
    """The pairs `curator ingest` reads from an exported file (its own format layer)."""
    return [formats.record_pairs(record, fmt)[0] for record in lines(out / name)]


def kept_rows(db: Path, where: str = "deleted_op IS NULL") -> list[tuple]:
    return query(db, f"SELECT id, prompt, response, source, messages, prompt_hash FROM pairs WHERE {where}")


def key(pair_or_row) -> tuple[str, str]:
    if isinstance(pair_or_row, formats.Pair):
        return pair_or_row.prompt, pair_or_row.response
    return pair_or_row[1], pair_or_row[2]


# --- formats -----------------------------------------------------------------------------------


def reference_record(fmt: str, prompt: str, response: str, source: str, messages: str | None) -> dict:
    """One pair as a record of the format, built in Python from training_set.SHAPES: what
    storage/export.py builds in SQL must equal it."""
    texts = {training_set.PROMPT: prompt, training_set.RESPONSE: response, training_set.SOURCE: source}
    texts[training_set.EMPTY] = ""
    record = {}
    for key, value in training_set.check_format(fmt).items():
        if isinstance(value, training_set.Turns):
            names = dict(value.roles)
            record[key] = [
                {value.role_key: names[turn["role"]], value.text_key: turn["content"]}
                for turn in chat_tokens.conversation(prompt, response, messages)
            ]
        else:
            record[key] = texts[value]
    return record


@needs_data
@pytest.mark.parametrize("fmt", training_set.FORMATS)
@pytest.mark.slow
def test_every_format_is_the_reference_record_and_reads_back_as_the_same_pairs(world, tmp_path, fmt):
    out = tmp_path / "out"
    manifest = export(world, out, "--format", fmt, "--val-fraction", "0.1", "--no-eval-check")
    records = lines(out / "train.jsonl") + lines(out / "val.jsonl")
    rows = kept_rows(world)
    assert len(records) == len(rows) == manifest["pairs"]["exported"]

    # Each line is exactly what the reference renderer below makes of its pair (SQL == reference).
    by_key = collections.defaultdict(list)
    for row in rows:
        by_key[key(row)].append(row)
    for record in records:
        # Several rows can share a prompt and answer (the identity conversations' "Goodbye").
        candidates = [
            reference_record(fmt, r[1], r[2], r[3], r[4]) for r in by_key[key(formats.record_pairs(record, fmt)[0])]
        ]
        assert record in candidates
        assert list(record) == list(training_set.SHAPES[fmt])

    # `curator ingest` of the export gives back the same pairs; conversations whole where the
    # format holds them.
    again = tmp_path / "again.duckdb"
    Curator(again)("ingest", "--format", fmt, out / "train.jsonl", out / "val.jsonl")
    whole = training_set.holds_conversations(fmt)

    def comparable(rows, with_source):
        return collections.Counter(
            (r[1], r[2], json.dumps(json.loads(r[4])) if (r[4] and whole) else None) + ((r[3],) if with_source else ())
            for r in rows
        )

    with_source = fmt == "gpt4all"
    assert comparable(kept_rows(again), with_source) == comparable(rows, with_source)
    conversations = sum(r[4] is not None for r in rows)
    assert conversations > 300  # the identity conversations
    assert manifest["pairs"]["conversations_whole" if whole else "conversations_flattened"] == conversations


# --- reproducibility, versions, deletes --------------------------------------------------------


@needs_data
@pytest.mark.slow
def test_same_version_and_seed_give_byte_identical_files(world, tmp_path):
    args = ("--format", "openai", "--eval-set", EVAL_FILE, "--seed", "7")
    export(world, tmp_path / "a", *args)
    export(world, tmp_path / "b", *args)
    for name in ("train.jsonl", "val.jsonl", "manifest.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name

    other = export(world, tmp_path / "c", "--format", "openai", "--eval-set", EVAL_FILE, "--seed", "8")
    a_lines = (tmp_path / "a" / "train.jsonl").read_bytes().splitlines()
    c_lines = (tmp_path / "c" / "train.jsonl").read_bytes().splitlines()
    assert a_lines != c_lines  # another order and split...
    all_a = sorted(a_lines + (tmp_path / "a" / "val.jsonl").read_bytes().splitlines())
    all_c = sorted(c_lines + (tmp_path / "c" / "val.jsonl").read_bytes().splitlines())
    assert all_a == all_c  # ...of the same records
    assert other["seed"] == 8


@needs_data
@pytest.mark.slow
def test_version_export_is_exactly_the_version_and_deleted_pairs_stay_out(private, tmp_path):
    run = Curator(private)
    run("version", "create", "v1")
    before = tmp_path / "before"
    export(private, before, "--version", "v1", "--no-eval-check")
    run("delete", "--source", "planted-dup", "--reason", "near-duplicates")

    # Later operations do not change what a version exports: not the records, not the manifest.
    after = tmp_path / "after"
    manifest = export(private, after, "--version", "v1", "--no-eval-check")
    for name in ("train.jsonl", "val.jsonl", "manifest.json"):
        assert (before / name).read_bytes() == (after / name).read_bytes(), name
    version_rows = query(
        private,
        "SELECT p.id, p.prompt, p.response FROM version_pairs v JOIN versions n "
        "ON n.id = v.version_id AND n.name = 'v1' JOIN pairs p ON p.id = v.pair_id",
    )
    pairs = exported(after, "train.jsonl", "gpt4all") + exported(after, "val.jsonl", "gpt4all")
    assert collections.Counter(map(key, pairs)) == collections.Counter(key(r) for r in version_rows)
    assert manifest["version"] == "v1" and manifest["operations_log"]["operations"] == 0

    # Without --version: every pair not deleted, and the log up to now.
    current = export(private, tmp_path / "now", "--no-eval-check")
    pairs = exported(tmp_path / "now", "train.jsonl", "gpt4all") + exported(tmp_path / "now", "val.jsonl", "gpt4all")
    assert collections.Counter(map(key, pairs)) == collections.Counter(map(key, kept_rows(private)))
    assert "planted-dup" not in current["counts"]["by_source"]
    assert current["pairs"]["exported"] == len(version_rows) - 20
    assert current["operations_log"]["operations"] == 1
    assert current["operations_log"]["sha256"] != manifest["operations_log"]["sha256"]

    result = run("export", tmp_path / "x", "--version", "nope", ok=False)
    assert result.exit_code != 0 and "no version 'nope'" in result.output


# --- the split ---------------------------------------------------------------------------------


@needs_data
@pytest.mark.slow
def test_split_never_puts_near_duplicates_on_both_sides(world, tmp_path):
    out = tmp_path / "out"
    manifest = export(world, out, "--val-fraction", "0.3", "--no-eval-check")
    rows = query(
        world,
        "SELECT p.prompt, p.response, p.prompt_hash, v.dup_group FROM pairs p "
        "JOIN pairs_view v USING (id) WHERE NOT v.deleted",
    )
    groups_of = collections.defaultdict(set)
    for prompt, response, prompt_hash, dup_group in rows:
        groups_of[(prompt, response)] |= {("prompt", prompt_hash)} | ({("dup", dup_group)} if dup_group else set())
    sides = {
        name: set().union(*(groups_of[key(p)] for p in exported(out, name, "gpt4all")))
        for name in ("train.jsonl", "val.jsonl")
    }
    assert not sides["train.jsonl"] & sides["val.jsonl"]

    # The check means something: many groups with several members, planted ones among them.
    assert (
        query(world, "SELECT count(*) FROM (SELECT prompt_hash FROM pairs GROUP BY 1 HAVING count(*) > 1)")[0][0] > 20
    )
    semantic = query(world, "SELECT count(DISTINCT dup_group) FROM pairs_view WHERE dup_kind = 'semantic'")[0][0]
    assert semantic > 5
    planted_twins = query(
        world,
        "SELECT count(*) FROM pairs a JOIN pairs b ON a.prompt_hash = b.prompt_hash "
        "AND a.source = 'planted-dup' AND b.source = ?",
        [curation_data.CODE],
    )[0][0]
    assert planted_twins == 10
    assert manifest["split"]["grouped_by"] == "normalized prompt and duplicate group"
    assert 0.2 < manifest["pairs"]["val"] / manifest["pairs"]["exported"] < 0.35  # whole groups only


@needs_data
@pytest.mark.slow
def test_split_is_stratified_by_cluster(world, tmp_path):
    fraction = 0.2
    manifest = export(world, tmp_path / "out", "--val-fraction", str(fraction), "--no-eval-check")
    assert manifest["split"]["stratified_by"] == "cluster (map prompt)"
    # Clusters made of small groups can be split in proportion; one big group cannot be split.
    largest_group = dict(
        query(
            world,
            """
        SELECT cluster, max(n) FROM (SELECT v.cluster, p.prompt_hash, count(*) AS n
                                     FROM pairs p JOIN pairs_view v USING (id)
                                     WHERE NOT v.deleted GROUP BY ALL) GROUP BY ALL""",
        )
    )
    checked = 0
    for cluster, counts in manifest["counts"]["by_cluster"].items():
        size = counts["train"] + counts["val"]
        if cluster != "none" and size >= 20 and largest_group[int(cluster)] <= 3:
            assert abs(counts["val"] / size - fraction) <= 0.1, (cluster, counts)
            checked += 1
    assert checked >= 5
    # Overall: the share, less the prompts repeated so often in their cluster that they cannot
    # go to validation without outgrowing the cluster's share (the identity set's "Goodbye").
    total = manifest["pairs"]["exported"]
    unsplittable = query(
        world,
        """
        WITH g AS (SELECT v.cluster, p.prompt_hash, count(*) AS n FROM pairs p JOIN pairs_view v USING (id)
                   WHERE NOT v.deleted GROUP BY ALL),
             c AS (SELECT cluster, sum(n) AS size FROM g GROUP BY ALL)
        SELECT coalesce(sum(n), 0) FROM g JOIN c USING (cluster) WHERE n > ? * size""",
        [fraction],
    )[0][0]
    assert unsplittable < total / 2
    assert fraction * (total - unsplittable) - 0.02 * total <= manifest["pairs"]["val"] <= (fraction + 0.02) * total


def test_groups_are_linked_transitively_and_the_split_keeps_them_whole():
    # a-b share a prompt, b-c a duplicate group: one group; d alone.
    prompt_hash = np.array([1, 1, 2, 3], dtype=np.uint64)
    dup_group = np.array([0, 9, 9, 0])
    in_dup_group = np.array([False, True, True, False])
    groups = training_set.leak_groups(prompt_hash, dup_group, in_dup_group)
    assert groups[0] == groups[1] == groups[2] != groups[3]

    rng = np.random.default_rng(0)
    n = 20_000
    groups = rng.integers(0, 8_000, n)
    strata = groups % 7
    keys = training_set.order_keys(np.arange(n), 42)
    val = training_set.assign_split(groups, strata, keys, 0.1)
    assert all(len(set(val[groups == g])) == 1 for g in np.unique(groups)[:500])
    assert abs(val.mean() - 0.1) < 0.01
    assert np.array_equal(val, training_set.assign_split(groups, strata, keys, 0.1))
    assert not training_set.assign_split(groups, strata, keys, 0.0).any()


# --- the evaluation-set check ------------------------------------------------------------------


def planted_ids(db: Path, source: str) -> set[int]:
    return {r[0] for r in query(db, "SELECT id FROM pairs WHERE source = ?", [source])}


def assert_contamination_removed(db: Path, out: Path, check: dict, fmt: str = "gpt4all") -> None:
    exact, near = planted_ids(db, "planted-eval-exact"), planted_ids(db, "planted-eval-near")
    shown = {e["pair_id"]: e for e in check["examples"]}
    assert exact <= {i for i, e in shown.items() if e["match"] == "exact"}
    assert near <= {i for i, e in shown.items() if e["match"] == "semantic"}
    assert all(e["similarity"] >= 0.9 for e in shown.values())
    assert check["removed_exact"] == 3 and check["removed_semantic"] == 3 and check["removed"] == 6
    prompts = {p.prompt for name in ("train.jsonl", "val.jsonl") for p in exported(out, name, fmt)}
    evals = set(evalset.read_prompts(EVAL_FILE))
    assert not prompts & evals
    control = query(db, "SELECT prompt FROM pairs WHERE source = 'planted-eval-control'")[0][0]
    assert control in prompts


@needs_data
@pytest.mark.slow
def test_eval_prompts_are_removed_and_reported_using_stored_vectors(world, tmp_path):
    out = tmp_path / "out"
    result = Curator(world)("export", out, "--eval-set", EVAL_FILE)
    assert "removed 6 pairs (3 exact, 3 semantic)" in result.output
    manifest = json.loads((out / "manifest.json").read_text())
    check = manifest["eval_check"]
    assert check["checked"] and check["set"] == {
        "name": EVAL_FILE.name,
        "found": "--eval-set",
        "prompts": 252,
        "sha256": hashlib.sha256(EVAL_FILE.read_bytes()).hexdigest(),
    }
    assert check["compared"]["stored_vectors"] == manifest["pairs"]["selected"]
    assert check["compared"]["without_vectors"] == 0
    assert manifest["pairs"]["removed_by_eval_check"] == 6
    assert manifest["pairs"]["exported"] == manifest["pairs"]["selected"] - 6
    assert_contamination_removed(world, out, check)


@needs_data
def test_eval_check_without_vectors_embeds_only_first_pass_candidates(tmp_path, monkeypatch):
    db = tmp_path / "plain.duckdb"
    run = Curator(db)
    run("ingest", DATA / "alpaca_5000.json", write_planted(tmp_path, []))
    monkeypatch.setenv("CURATOR_EVAL_SET", str(EVAL_FILE))  # the default set, from the environment
    out = tmp_path / "out"
    result = run("export", out, "--format", "alpaca")
    assert "have no stored prompt vector" in result.output
    check = json.loads((out / "manifest.json").read_text())["eval_check"]
    assert check["set"]["found"] == "CURATOR_EVAL_SET"
    assert check["compared"]["stored_vectors"] == 0
    # The planted edits and the control are candidates; little else is.
    assert 4 <= check["compared"]["first_pass_candidates_embedded"] <= 40
    assert_contamination_removed(db, out, check, "alpaca")


@needs_data
def test_default_set_is_never_fetched_unasked_and_self_instruct_is_fetched_once_checked_and_cached(
    tmp_path, monkeypatch
):
    # The download path runs against file:// addresses: never the network.
    monkeypatch.delenv("CURATOR_EVAL_SET", raising=False)
    monkeypatch.setenv("CURATOR_CACHE", str(tmp_path / "cache"))
    cached = tmp_path / "cache" / "eval" / evalset.SELF_INSTRUCT_NAME
    db = tmp_path / "small.duckdb"
    run = Curator(db)
    run("ingest", DATA / "code_alpaca_2k.json")

    monkeypatch.setattr(evalset, "SELF_INSTRUCT_URL", EVAL_FILE.as_uri())
    result = run("export", tmp_path / "none")  # no set configured or cached: said, and nothing fetched
    assert "eval check: NOT DONE" in result.output and "--eval-set self-instruct" in result.output
    check = json.loads((tmp_path / "none" / "manifest.json").read_text())["eval_check"]
    assert check["checked"] is False and "no evaluation set" in check["reason"]
    assert not cached.exists()

    monkeypatch.setattr(evalset, "SELF_INSTRUCT_URL", (DATA / "seed_tasks.jsonl").as_uri())
    bad = run("export", tmp_path / "bad", "--eval-set", "self-instruct", ok=False)
    assert bad.exit_code != 0 and "did not have the expected content" in bad.output
    assert not cached.exists()

    monkeypatch.setattr(evalset, "SELF_INSTRUCT_URL", EVAL_FILE.as_uri())
    first = export(db, tmp_path / "first", "--eval-set", "self-instruct")["eval_check"]
    assert first["set"]["found"] == "downloaded" and cached.read_bytes() == EVAL_FILE.read_bytes()
    monkeypatch.setattr(evalset, "SELF_INSTRUCT_URL", (tmp_path / "gone").as_uri())
    assert export(db, tmp_path / "second")["eval_check"]["set"]["found"] == "cache"

    skipped = export(db, tmp_path / "skipped", "--no-eval-check")["eval_check"]
    assert skipped == {"checked": False, "reason": "skipped (--no-eval-check)"}


def test_eval_prompts_are_read_from_text_and_jsonl_files(tmp_path):
    text = tmp_path / "prompts.txt"
    text.write_text("First prompt\n\n  Second prompt  \nFirst prompt\n")
    assert evalset.read_prompts(text) == ["First prompt", "Second prompt"]
    records = tmp_path / "prompts.jsonl"
    records.write_text(
        '{"prompt": "Say hi"}\n{"instruction": "Add", "input": "2 + 2"}\n'
        '{"instruction": "Sum up", "input": "<noinput>"}\n{"other": 1}\n'
    )
    assert evalset.read_prompts(records) == ["Say hi", "Add\n\n2 + 2", "Sum up"]


# --- the manifest ------------------------------------------------------------------------------


@needs_data
@pytest.mark.slow
def test_manifest_records_what_the_export_is(private, tmp_path):
    out = tmp_path / "out"
    manifest = export(private, out, "--format", "sharegpt", "--val-fraction", "0.05", "--no-eval-check")
    assert manifest["tool_version"] == curator.__version__
    assert (manifest["format"], manifest["seed"], manifest["val_fraction"], manifest["version"]) == (
        "sharegpt",
        42,
        0.05,
        None,
    )
    for name, info in manifest["files"].items():
        data = (out / name).read_bytes()
        assert info == {"records": data.count(b"\n"), "bytes": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert set(manifest["files"]) == {"train.jsonl", "val.jsonl"}
    for by in ("by_source", "by_cluster"):
        assert sum(c["train"] for c in manifest["counts"][by].values()) == manifest["pairs"]["train"]
        assert sum(c["val"] for c in manifest["counts"][by].values()) == manifest["pairs"]["val"]
    assert manifest["counts"]["by_source"]["dummy_conversation"]["train"] > 0
    latest_signals = query(private, "SELECT id, params FROM signal_runs ORDER BY id DESC LIMIT 1")[0]
    assert manifest["signals"] == {"run": latest_signals[0], "params": json.loads(latest_signals[1])}
    assert manifest["duplicates"]["run"] == query(private, "SELECT max(id) FROM duplicate_runs")[0][0]
    assert manifest["operations_log"] == {"operations": 0, "up_to": None, "sha256": hashlib.sha256(b"").hexdigest()}

    # A tag changes the log (and its hash), not the records; no validation file when F = 0.
    Curator(private)("tag", "reviewed", "--source", curation_data.CODE)
    again = export(private, out, "--format", "sharegpt", "--val-fraction", "0", "--no-eval-check")
    assert again["operations_log"]["operations"] == 1
    assert again["operations_log"]["sha256"] != manifest["operations_log"]["sha256"]
    assert not (out / "val.jsonl").exists() and set(again["files"]) == {"train.jsonl"}
    assert again["pairs"]["train"] == manifest["pairs"]["exported"]
