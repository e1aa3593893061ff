"""The LoRA trainer on real pairs: labels, padding, a killed and resumed run, the adapter, scores.

One small run (64 real Alpaca pairs written as an export directory, 8 steps of 4 examples,
--max-length 128) is started as a child process, killed with SIGKILL after its first
checkpoint, and resumed; every test about outputs reads that one run.
"""

from __future__ import annotations

import hashlib
import json
import operator
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from curator import config, run_log, training
from storage import training as run_rows
from tests.conftest import DATA, ROOT, needs_data, query

pytestmark = needs_data

STEPS, SAVE_EVERY = 8, 2
RUN_ARGS = [
    "--max-steps",
    STEPS,
    "--batch-size",
    4,
    "--max-length",
    128,
    "--save-every",
    SAVE_EVERY,
    "--eval-every",
    4,
    "--template",
    "chatml",
]


def short_alpaca(n: int) -> list[dict]:
    """The first n Alpaca records with a real answer and under 300 characters in all."""
    records = json.loads((DATA / "alpaca_5000.json").read_text())
    picked = [
        r
        for r in records
        if r["output"].strip()
        and r["output"] != "<nooutput>"
        and len(r["instruction"]) + len(r["input"]) + len(r["output"]) < 300
    ]
    return picked[:n]


def write_jsonl(path: Path, records: list[dict]) -> None:
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


@pytest.fixture(scope="module")
def tokenizer():
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(training.bundled_base_dir())


@pytest.fixture(scope="module")
def alpaca() -> list[training.Example]:
    examples, skipped = training.read_examples(DATA / "alpaca_5000.json")
    assert len(examples) == 4998 and len(skipped) == 2  # the two empty outputs
    return examples


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """An export of 64 real pairs (48 train, 16 val), those pairs ingested, and a run on them
    killed with SIGKILL after its first checkpoint and then resumed."""
    root = tmp_path_factory.mktemp("train")
    records = short_alpaca(64)
    export = root / "export"
    export.mkdir()
    write_jsonl(export / "train.jsonl", records[:48])
    write_jsonl(export / "val.jsonl", records[48:])
    (export / "manifest.json").write_text(json.dumps({"format": "alpaca", "pairs": 64}))
    (root / "pairs.json").write_text(json.dumps(records))
    db, out = root / "train.duckdb", root / "run"
    base = training.bundled_base_dir()  # any local model directory works like a hub name
    exe = Path(sys.executable).with_name("curator")
    assert subprocess.run([exe, "--db", db, "ingest", root / "pairs.json"], capture_output=True).returncode == 0
    args = [str(a) for a in [exe, "--db", db, "train", export, "--base", base, "--out", out, *RUN_ARGS]]
    errors = root / "killed.stderr"
    child = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=errors.open("w"))
    order_log = out / "data_order.jsonl"
    deadline = time.time() + 600
    while not (order_log.exists() and len(order_log.read_text().splitlines()) > SAVE_EVERY):
        assert child.poll() is None, errors.read_text()
        assert time.time() < deadline, "the run did not get past its first checkpoint"
        time.sleep(0.1)
    os.kill(child.pid, signal.SIGKILL)
    child.wait()
    steps_before_kill = len(order_log.read_text().splitlines())
    resumed = subprocess.run(args + ["--resume", "--json"], capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    return {
        "db": db,
        "out": out,
        "export": export,
        "base": base,
        "records": records,
        "steps_before_kill": steps_before_kill,
        "report": json.loads(resumed.stdout),
    }


# --- labels and padding --------------------------------------------------------------------


def test_masking_leaves_no_prompt_token_in_the_loss(tokenizer, alpaca):
    examples = alpaca[:8]
    template = training.chat_template(tokenizer, "model")
    batch = training.collate(
        [training.encode(e, tokenizer, template, 512) for e in examples], training.distinct_pad(tokenizer)
    )
    for row, example in enumerate(examples):
        labels, ids, attention = batch.labels[row], batch.input_ids[row], batch.attention_mask[row]
        labelled = labels != training.IGNORE
        # Exactly the answer and the end-of-turn token are trained; nothing of the system
        # prompt, the user turn, the role headers or the padding.
        assert tokenizer.decode(labels[labelled]) == example.response + tokenizer.eos_token
        assert torch.equal(labels[labelled], ids[labelled])
        first = int(labelled.nonzero()[0])
        assert tokenizer.decode(ids[:first]).endswith(example.prompt + "<|im_end|>\n<|im_start|>assistant\n")
        assert not labelled[attention == 0].any()


def test_truncated_sequences_get_no_eos(tokenizer, alpaca):
    example = next(e for e in alpaca if len(e.response) > 400)
    template = training.chat_template(tokenizer, "model")
    whole = training.encode(example, tokenizer, template, 4096)
    cut = training.encode(example, tokenizer, template, len(whole.input_ids) - 20)
    assert not whole.truncated and whole.labels[-2] == tokenizer.eos_token_id
    assert cut.truncated and tokenizer.eos_token_id not in cut.labels
    assert cut.input_ids == whole.input_ids[: len(cut.input_ids)]


def test_every_assistant_turn_of_a_conversation_is_trained(tokenizer):
    # A real OpenAssistant conversation path: user, assistant, user, assistant.
    example = next(
        e
        for e in training.read_examples(DATA / "en_100_tree.jsonl")[0]
        if [m["role"] for m in e.messages] == ["user", "assistant", "user", "assistant"]
    )
    for name in config.TEMPLATES:
        encoded = training.encode(example, tokenizer, training.chat_template(tokenizer, name), 4096)
        trained = tokenizer.decode([t for t in encoded.labels if t != training.IGNORE])
        answers = [m["content"] for m in example.messages if m["role"] == "assistant"]
        assert trained == "".join(a + tokenizer.eos_token for a in answers), name
        for question in (m["content"] for m in example.messages if m["role"] == "user"):
            assert question not in trained


def test_pad_is_an_existing_token_other_than_eos(alpaca):
    device, dtype = training.device_and_dtype()
    model, tokenizer, _, _ = training.load_base(None, device, dtype)
    assert tokenizer.pad_token_id not in (tokenizer.eos_token_id, tokenizer.bos_token_id)
    assert len(tokenizer) == model.config.vocab_size == model.get_input_embeddings().weight.shape[0] == 49152
    # The head runs on labelled positions only: the same losses as the model's full forward pass.
    examples = alpaca[:4]
    template = training.chat_template(tokenizer, "model")
    batch = training.collate([training.encode(e, tokenizer, template, 128) for e in examples], tokenizer.pad_token_id)
    with torch.no_grad():
        summed, counts = training.token_losses(model, batch, device)
        logits = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask).logits[:, :-1]
        full = torch.nn.functional.cross_entropy(logits.transpose(1, 2), batch.labels[:, 1:], reduction="none")
    torch.testing.assert_close(summed / counts, full.sum(1) / counts, rtol=1e-3, atol=1e-3)


def test_length_grouping_cuts_padding(alpaca):
    lengths = [len(e.response) for e in alpaca[:2048]]
    batches = training.length_grouped(lengths, 8, seed=0)
    assert sorted(i for b in batches for i in b) == list(range(len(lengths)))
    grouped = sum(max(lengths[i] for i in b) * len(b) for b in batches)
    random_order = torch.randperm(len(lengths), generator=torch.Generator().manual_seed(0)).tolist()
    plain = sum(
        max(lengths[i] for i in random_order[s : s + 8]) * len(random_order[s : s + 8])
        for s in range(0, len(lengths), 8)
    )
    assert grouped < 0.7 * plain
    assert training.length_grouped(lengths, 8, seed=0) == batches


def test_the_cli_shows_the_trainers_settings_without_loading_torch():
    """`curator train --help` and `quantize --help` show TrainConfig's defaults and the GGUF
    types from curator.config, and starting the CLI loads no torch (seconds on a laptop)."""
    probe = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from click.testing import CliRunner; from cli.main import cli; "
            "out = CliRunner().invoke(cli, ['train', '--help']).output + "
            "CliRunner().invoke(cli, ['quantize', '--help']).output; "
            "print('torch' in sys.modules, 'transformers' in sys.modules); print(out)",
        ],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert probe.returncode == 0, probe.stderr
    loaded, help_text = probe.stdout.split("\n", 1)
    assert loaded == "False False"
    defaults = training.TrainConfig(data=".", out=".")
    assert f"[default: {defaults.lr}]" in help_text and f"[default: {defaults.lora_r}]" in help_text
    assert "[default: q_proj,v_proj]" in help_text
    assert "q4_1" in help_text and "chatml" in help_text


# --- the run ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_resume_after_kill_reaches_the_same_step_with_the_same_data_order(run):
    assert run["report"]["steps"] == STEPS
    assert (run["out"] / f"checkpoint-{SAVE_EVERY}" / "state.pt").exists()
    logged: dict[int, list[list[int]]] = {}
    for line in (run["out"] / "data_order.jsonl").read_text().splitlines():
        entry = json.loads(line)
        logged.setdefault(entry["step"], []).append(entry["ids"])
    assert sorted(logged) == list(range(1, STEPS + 1))
    # Steps done before the kill and redone after it from the checkpoint used the same examples.
    redone = [ids for ids in logged.values() if len(ids) > 1]
    assert redone, "the kill came right after a checkpoint: nothing was redone"
    assert all(ids == [ids[0]] * len(ids) for ids in redone)
    # The order is the seeded schedule: every training example once per epoch (48 = 12 steps of 4).
    first = [i for step in range(1, STEPS + 1) for i in logged[step][0]]
    assert len(first) == len(set(first)) == STEPS * 4
    statuses = [r[0] for r in query(run["db"], "SELECT status FROM jobs WHERE kind = 'train' ORDER BY id")]
    assert statuses == ["running", "done"]  # the killed job's row stays 'running' (`curator jobs`: interrupted)


@pytest.mark.slow
def test_validation_loss_falls_and_the_report_says_what_ran(run):
    report = run["report"]
    assert report["val_loss_final"] < report["val_loss_initial"]
    assert report["val_perplexity_final"] < report["val_perplexity_initial"]
    assert report["examples_train"] == 48 and report["examples_val"] == 16
    manifest = (run["export"] / "manifest.json").read_bytes()
    assert report["manifest_sha256"] == hashlib.sha256(manifest).hexdigest()
    assert report["base"] == str(run["base"].resolve())
    assert report["tokens_per_s"] > 0
    assert report["hyperparameters"]["lora_r"] == 8 and report["hyperparameters"]["lr"] == 1e-3
    assert [v["step"] for v in report["history"]["val"]] == [0, 4, 8]
    assert (run["out"] / "loss_curve.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # The database has the run and its loss history, as the web app reads them.
    import storage

    con = storage.connect_read_only(run["db"])
    try:
        runs = run_rows.runs(con)
        history = run_rows.losses(con, runs[0]["id"])
    finally:
        con.close()
    assert len(runs) == 1 and runs[0]["status"] == "done" and runs[0]["steps"] == STEPS
    assert [h["step"] for h in history if h["split"] == "train"] == list(range(1, STEPS + 1))
    assert [h["step"] for h in history if h["split"] == "val"] == [0, 4, 8]
    # The run folder's live log, cut back to the checkpoint on resume, ends up the same.
    by_step = operator.itemgetter("step", "split")
    assert sorted(run_log.losses(run["out"]), key=by_step) == sorted(history, key=by_step)


@pytest.mark.slow
def test_adapter_loads_with_peft(run):
    from peft import PeftConfig, PeftModel
    from transformers import AutoModelForCausalLM

    config = PeftConfig.from_pretrained(run["out"])
    assert (config.r, config.lora_alpha, config.lora_dropout) == (8, 32, 0.1)
    assert set(config.target_modules) == {"q_proj", "v_proj"}
    base = AutoModelForCausalLM.from_pretrained(config.base_model_name_or_path)
    ids = torch.tensor([[1, 4093, 198, 19556, 2, 198, 1, 520, 9531, 198]])
    with torch.no_grad():
        before = base(ids).logits
        tuned = PeftModel.from_pretrained(base, run["out"])
        after = tuned(ids).logits
    assert not torch.allclose(before, after, atol=1e-4)


@pytest.mark.slow
def test_score_stores_per_pair_losses_lower_after_training(run, curator):
    curator.db = run["db"]
    result = curator.json("score", run["out"])
    assert result["examples"] == 64 and result["matched"] == 64
    splits = {s["split"]: s for s in result["splits"]}
    assert splits["train"]["pairs"] == 48 and splits["val"]["pairs"] == 16
    assert splits["train"]["loss_tuned"] < splits["train"]["loss_base"]
    rows = query(run["db"], "SELECT loss_base, loss_tuned FROM pairs_view WHERE loss_base IS NOT NULL")
    assert len(rows) == 64 and all(b > 0 and t > 0 for b, t in rows)
