"""GGUF export and perplexity on a short real run: the f16 file matches torch, Q8_0 and the
4-bit file keep the tuning, the adapter applies in llama.cpp, eval's numbers agree.

One LoRA run (96 short real Alpaca pairs, 12 steps of 8, lr 3e-3, --max-length 192, ChatML) is
written as every file type the tests read, through `curator quantize`; each test reads those
files and their quant_report.json. Its 16 validation pairs have long answers (~1,200 answer
tokens in all): on a few hundred tokens, file-to-file differences of ~1% are noise (measured:
the same Q8_0 file read -0.02% and +1.05% against f16 on two sets of short answers), while the
bars are 0.5%. Their perplexity falls by ~8%.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from bench.mixtures import alpaca_split
from curator import chat_tokens, evaluation, gguf_export, training
from tests.conftest import DATA, Curator, needs_data, query
from tests.test_train import write_jsonl

# (file name, quantize arguments)
FILES = {
    "f16": ["--type", "f16"],
    "q8_0": ["--type", "q8_0"],
    "q4_1": ["--type", "q4_1"],  # the best 4-bit file: the bundled base's own grid
    "q4_1-plain": ["--type", "q4_1", "--plain"],  # the naive merge-then-quantize file
    "q4_0-plain": ["--type", "q4_0", "--plain"],  # the naive Q4_0 file: reported, no bar
    "adapter": ["--adapter-only"],
}


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> dict:
    if not DATA.exists():
        pytest.skip("needs ../shared/data (the project's shared real datasets; CI has it)")
    root = tmp_path_factory.mktemp("quantize")
    train, val = alpaca_split()
    export = root / "export"
    export.mkdir()
    write_jsonl(export / "train.jsonl", train)
    write_jsonl(export / "val.jsonl", val)
    out = root / "run"
    report = training.train(
        training.TrainConfig(
            data=str(export),
            out=str(out),
            max_steps=12,
            batch_size=8,
            max_length=192,
            lr=3e-3,
            template="chatml",
            eval_every=12,
        )
    )
    curator = Curator(root / "quantize.duckdb")
    results = {}
    for name, args in FILES.items():
        path = root / "files" / f"{name}.gguf"
        result = curator("quantize", out, *args, "--out", path, "--json")
        results[name] = {"entry": json.loads(result.stdout), "stderr": result.stderr, "path": path}
    return {"root": root, "out": out, "export": export, "report": report, "files": results, "db": curator.db}


def entry(run, name: str) -> dict:
    return run["files"][name]["entry"]


def val_encoded(run, n: int) -> list[training.Encoded]:
    """The run's first n validation examples, tokenized as quantize measured them."""
    from transformers import AutoTokenizer

    examples, template, max_length = evaluation.run_val_set(run["out"])
    tokenizer = AutoTokenizer.from_pretrained(run["out"])
    return training.encode_all(examples[:n], tokenizer, training.chat_template(tokenizer, template), max_length)[0]


def test_permutation_interleaves_each_heads_rotary_halves():
    # 2 heads of 4 rows: HF keeps each head's halves apart (0 1 | 2 3), llama.cpp pairs them.
    rows = np.arange(8)[:, None] * np.ones((1, 3))
    assert gguf_export.permute_rows(rows, 2)[:, 0].tolist() == [0, 2, 1, 3, 4, 6, 5, 7]


@needs_data
@pytest.mark.slow
def test_the_run_gained_and_the_reference_is_cached(run):
    f16 = entry(run, "f16")
    assert f16["ppl_tuned"] < 0.96 * f16["ppl_base"], "the run must gain enough for gain-kept to mean something"
    assert f16["examples"] == 16 and f16["engines"]["file"] == "llama.cpp"
    assert f16["engines"]["tuned"].startswith("torch")
    # Every file was measured against the same references, computed once.
    assert len({(e["entry"]["ppl_base"], e["entry"]["ppl_tuned"]) for e in run["files"].values()}) == 1
    assert json.loads((run["out"] / "ppl_reference.json").read_text())["tuned"]["ppl_tokens"] == f16["ppl_tuned"]
    # Token-weighted: the trainer's own validation perplexity of the same examples.
    assert f16["ppl_base"] == pytest.approx(run["report"]["val_perplexity_initial"], rel=1e-4)
    assert f16["ppl_tuned"] == pytest.approx(run["report"]["val_perplexity_final"], rel=1e-4)


@needs_data
@pytest.mark.slow
def test_f16_file_matches_torch(run):
    f16 = entry(run, "f16")
    assert abs(f16["ppl_file"] / f16["ppl_tuned"] - 1) < 0.005
    tuned = evaluation.TorchModel(str(run["out"]))
    gguf = evaluation.GgufModel(run["files"]["f16"]["path"], n_ctx=192)
    for example in val_encoded(run, 3):
        with torch.no_grad():
            expected = tuned.model(torch.tensor([example.input_ids])).logits[0].numpy()
        got = gguf.logits_at(example.input_ids, list(range(len(example.input_ids))))
        assert np.abs(got - expected).max() < 0.15  # logits of magnitude ~10; measured max 0.05
        assert (got.argmax(1) == expected.argmax(1)).all()


@needs_data
@pytest.mark.slow
def test_file_carries_the_base_tokenizer_template_and_layout(run):
    from gguf import GGUFReader

    base = GGUFReader(chat_tokens.bundled_gguf())
    written = GGUFReader(run["files"]["q4_1"]["path"])
    for key in (
        "tokenizer.chat_template",
        "tokenizer.ggml.tokens",
        "tokenizer.ggml.merges",
        "tokenizer.ggml.eos_token_id",
        "llama.attention.head_count_kv",
        "llama.rope.freq_base",
    ):
        assert written.fields[key].contents() == base.fields[key].contents(), key
    assert written.fields["general.file_type"].contents() == 3  # llama.cpp's MOSTLY_Q4_1
    assert [t.name for t in written.tensors] == [t.name for t in base.tensors]
    # Untouched tensors are the base's Q4_1 blocks, byte for byte; tuned ones are Q8_0;
    # embeddings stay at the base's Q8_0.
    written = {t.name: t for t in written.tensors}
    for tensor in base.tensors:
        mine = written[tensor.name]
        if ".attn_q." in tensor.name or ".attn_v." in tensor.name:
            assert mine.tensor_type.name == "Q8_0"
        else:
            assert mine.tensor_type == tensor.tensor_type and np.array_equal(mine.data, tensor.data), tensor.name


@needs_data
@pytest.mark.slow
def test_q8_0_keeps_the_tuning(run):
    q8, f16 = entry(run, "q8_0"), entry(run, "f16")
    assert q8["ppl_file"] <= 1.005 * f16["ppl_file"]
    assert q8["gain_kept"] >= 0.9
    # The base's Q4_1 tensors the adapter left alone are copied: Q8_0 could only re-round them.
    assert q8["tensor_types"] == {"Q8_0": 61, "Q4_1": 150, "F32": 61} and q8["requantized_tensors"] == 0


@needs_data
@pytest.mark.slow
def test_best_4bit_file_keeps_the_tuning_at_little_size(run):
    best, plain = entry(run, "q4_1"), entry(run, "q4_1-plain")
    assert best["ppl_file"] <= 1.10 * best["ppl_tuned"]
    assert best["gain_kept"] >= 0.8 and best["warning"] is None
    assert best["size_bytes"] <= 1.3 * plain["size_bytes"]
    assert best["size_bytes"] - plain["size_bytes"] == best["keep_cost_bytes"] > 0
    assert best["tuned_tensors"] == 60 and best["tuned_type"] == "Q8_0" and plain["tuned_type"] == "Q4_1"
    # The naive file rounds the tuning onto the 4-bit grid and loses much of it; the tool says
    # so loudly whenever it keeps less than half.
    assert plain["gain_kept"] < best["gain_kept"] - 0.1
    assert ("WARNING" in run["files"]["q4_1-plain"]["stderr"]) == (plain["gain_kept"] < 0.5)


@needs_data
@pytest.mark.slow
def test_plain_q4_0_is_reported(run):
    q4_0 = entry(run, "q4_0-plain")
    assert q4_0["type"] == "q4_0" and q4_0["tensor_types"] == {"Q4_0": 210, "Q8_0": 1, "F32": 61}
    assert q4_0["requantized_tensors"] == 150 and isinstance(q4_0["gain_kept"], float)
    # Re-quantizing the Q4_1 base onto Q4_0 costs more than the lossless Q4_1 file.
    assert q4_0["ppl_file"] > entry(run, "q4_1")["ppl_file"]
    assert ("WARNING" in run["files"]["q4_0-plain"]["stderr"]) == (q4_0["gain_kept"] < 0.5)


@needs_data
@pytest.mark.slow
def test_adapter_applies_in_llama_cpp_and_keeps_the_tuning(run):
    from gguf import GGUFReader

    adapter = entry(run, "adapter")
    path = run["files"]["adapter"]["path"]
    fields = GGUFReader(path).fields
    assert fields["general.type"].contents() == "adapter" and fields["adapter.type"].contents() == "lora"
    assert fields["adapter.lora.alpha"].contents() == 32.0
    assert adapter["size_bytes"] < 3e6 and adapter["runs_with"] == str(chat_tokens.bundled_gguf())
    assert adapter["gain_kept"] >= 0.9
    ids = val_encoded(run, 1)[0].input_ids
    positions = list(range(len(ids)))
    plain = evaluation.GgufModel(chat_tokens.bundled_gguf(), n_ctx=len(ids)).logits_at(ids, positions)
    applied = evaluation.GgufModel(chat_tokens.bundled_gguf(), path, n_ctx=len(ids)).logits_at(ids, positions)
    assert np.abs(applied - plain).mean() > 0.3


@needs_data
@pytest.mark.slow
def test_reports_and_jobs_are_recorded(run):
    report = json.loads((run["root"] / "files" / "quant_report.json").read_text())["files"]
    assert sorted(report) == sorted(f"{name}.gguf" for name in FILES)
    for name, result in run["files"].items():
        assert report[f"{name}.gguf"] == result["entry"]
        assert result["entry"]["size_bytes"] == result["path"].stat().st_size
    rows = query(run["db"], "SELECT status FROM jobs WHERE kind = 'quantize' ORDER BY id")
    assert [status for (status,) in rows] == ["done"] * len(FILES)


# --- eval ----------------------------------------------------------------------------------


@needs_data
def test_self_instruct_tasks_give_one_example_per_answered_instance():
    path = DATA / "user_oriented_instructions.jsonl"
    tasks = [json.loads(line) for line in path.read_text().splitlines()]
    examples = evaluation.read_eval_examples(path)
    assert len(examples) == sum(1 for t in tasks for i in t["instances"] if i["output"].strip())
    first = tasks[0]
    assert examples[0].prompt.startswith(first["instruction"])
    assert first["instances"][0]["input"] in examples[0].prompt
    assert examples[0].response == first["instances"][0]["output"].strip()


@needs_data
@pytest.mark.slow
def test_eval_engines_agree_and_tuning_shows(run, tmp_path):
    curator = Curator(tmp_path / "eval.duckdb")
    bundled, plot = chat_tokens.bundled_gguf(), tmp_path / "hist.png"
    rows = curator.json(
        "eval",
        bundled,
        training.BUNDLED_BASE,
        run["out"],
        "--data",
        DATA / "user_oriented_instructions.jsonl",
        "--limit",
        6,
        "--max-length",
        256,
        "--plot",
        plot,
    )
    assert [r["model"] for r in rows] == [str(bundled), training.BUNDLED_BASE, str(run["out"])]
    gguf, torch_base, tuned = rows
    assert gguf["engine"] == "llama.cpp" and torch_base["engine"].startswith("torch")
    assert all(r["n"] == 6 and len(r["ppl_per_example"]) == 6 and max(r["ppl_per_example"]) <= 100 for r in rows)
    assert all(r["ppl_median"] <= max(r["ppl_per_example"]) for r in rows)
    # The same weights in llama.cpp's Q4_1 kernels and in torch after dequantization.
    assert abs(gguf["ppl_mean"] / torch_base["ppl_mean"] - 1) < 0.03
    assert tuned["ppl_mean"] != torch_base["ppl_mean"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@needs_data
@pytest.mark.slow
def test_eval_of_base_gguf_with_lora_is_the_quantize_figure(run, tmp_path):
    # Same file, adapter, examples, template and length as quantize measured: the same number.
    rows = Curator(tmp_path / "eval.duckdb").json(
        "eval",
        chat_tokens.bundled_gguf(),
        "--lora",
        run["files"]["adapter"]["path"],
        "--data",
        run["export"],
        "--template",
        "chatml",
        "--max-length",
        192,
    )
    assert rows[0]["model"].endswith("+ " + str(run["files"]["adapter"]["path"]))
    assert rows[0]["n"] == 16
    assert rows[0]["ppl_tokens"] == pytest.approx(entry(run, "adapter")["ppl_file"], rel=1e-4)
    assert rows[0]["ppl_mean"] == pytest.approx(entry(run, "adapter")["ppl_mean_clipped"]["file"], rel=1e-4)


def test_tasks_without_lm_eval_is_a_clear_error(tmp_path):
    if evaluation.lm_eval_installed():
        pytest.skip("lm-evaluation-harness is installed here")
    result = Curator(tmp_path / "eval.duckdb")("eval", training.BUNDLED_BASE, "--tasks", "boolq", ok=False)
    assert result.exit_code != 0 and "pip install 'curator[eval]'" in result.output
