"""Quantize and eval benchmark: for each type, what `curator quantize` costs (write and measure
time), what it gives (size, perplexity, share of the tuning gain kept), llama.cpp's own quantizer
on the same model as the baseline for write time and size, and eval time per 100 examples.

    .venv/bin/python bench/quantize.py                       # trains a short run first (~2 min)
    .venv/bin/python bench/quantize.py --run RUN_DIR --eval-examples 100

The run: tests/test_quantize.py's (96 short Alpaca pairs, 12 steps of 8 at lr 3e-3, max length
192, ChatML; 16 validation pairs with long answers), unless --run names one. Each file is
written and measured by the quantize job exactly as the CLI runs it (the torch references are
computed once per run, before the timings). The baseline quantizes the f16 file with llama.cpp's
llama_model_quantize (all tensors to the type, its own rules for embeddings): it knows nothing
of the adapter, so its 4-bit files are the naive kind. Eval: the first N Self-Instruct
user-oriented instances, max length 512, on torch (the bundled base, dequantized) and llama.cpp
(the bundled Q4_1 GGUF, and the q8_0 file).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # before torch loads, as the CLI does (cli/main.py)

DATA = ROOT.parent / "shared" / "data"
FILES = [
    ("f16", {}),
    ("q8_0", {}),
    ("q4_1", {}),
    ("q4_1", {"plain": True}),
    ("q4_0", {}),
    ("q4_0", {"plain": True}),
    ("q5_0", {}),
    ("adapter", {"adapter_only": True}),
]


def short_run(work: Path) -> Path:
    from bench.mixtures import alpaca_split
    from curator import training

    export = work / "export"
    export.mkdir()
    for name, records in zip(("train", "val"), alpaca_split()):
        (export / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in records))
    training.train(
        training.TrainConfig(
            data=str(export),
            out=str(work / "run"),
            max_steps=12,
            batch_size=8,
            max_length=192,
            lr=3e-3,
            template="chatml",
            eval_every=12,
        )
    )
    return work / "run"


def llama_cpp_quantize(source: Path, out: Path, qtype: str) -> float:
    import llama_cpp
    from gguf import LlamaFileType

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = int(LlamaFileType[f"MOSTLY_{qtype.upper()}"])
    began = time.perf_counter()
    if llama_cpp.llama_model_quantize(str(source).encode(), str(out).encode(), params) != 0:
        raise SystemExit(f"llama.cpp could not quantize {source} to {qtype}")
    return time.perf_counter() - began


def eval_times(q8_file: Path, n: int) -> list[dict]:
    from curator import chat_tokens, evaluation, training

    examples = evaluation.read_eval_examples(DATA / "user_oriented_instructions.jsonl")[:n]
    rows = []
    for spec in (training.BUNDLED_BASE, str(chat_tokens.bundled_gguf()), str(q8_file)):
        model = evaluation.open_model(spec, max_length=512)
        result = evaluation.score(model, examples, max_length=512).summary()
        rows.append(
            {
                "model": Path(spec).name,
                "engine": result["engine"],
                "n": result["n"],
                "seconds_per_100": round(result["seconds"] * 100 / result["n"], 1),
                "answer_tokens_per_s": round(result["tokens"] / result["seconds"], 1),
                "ppl_mean": round(result["ppl_mean"], 3),
            }
        )
    return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", type=Path, help="A finished `curator train` run (default: train a short one).")
    parser.add_argument("--eval-examples", type=int, default=100)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import storage
    from jobs.quantize import quantize

    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        began = time.perf_counter()
        run = args.run or short_run(work)
        train_seconds = time.perf_counter() - began
        files = work / "files"
        rows = []
        for qtype, options in FILES:
            name = "adapter" if options.get("adapter_only") else qtype + ("-plain" if options.get("plain") else "")
            began = time.perf_counter()
            entry = quantize(storage.Database(work / "bench.duckdb"), run, files / f"{name}.gguf", qtype, **options)
            rows.append(
                {
                    "file": name,
                    "size_mb": round(entry["size_bytes"] / 1e6, 2),
                    "write_s": entry["seconds"]["write"],
                    "measure_s": entry["seconds"]["measure_file"],
                    "total_s": round(time.perf_counter() - began, 1),
                    "ppl_file": round(entry["ppl_file"], 4),
                    "gain_kept": None if entry["gain_kept"] is None else round(entry["gain_kept"], 3),
                    "ppl_base": round(entry["ppl_base"], 4),
                    "ppl_tuned": round(entry["ppl_tuned"], 4),
                }
            )
        baseline = []
        for qtype in ("q8_0", "q4_1", "q4_0", "q5_0"):
            out = files / f"llama-cpp-{qtype}.gguf"
            seconds = llama_cpp_quantize(files / "f16.gguf", out, qtype)
            baseline.append(
                {"type": qtype, "seconds": round(seconds, 2), "size_mb": round(out.stat().st_size / 1e6, 2)}
            )
        evals = eval_times(files / "q8_0.gguf", args.eval_examples)

    print(
        f"run: {run if args.run else f'short run trained here in {train_seconds:.0f} s'}; "
        f"ppl base {rows[0]['ppl_base']}, tuned {rows[0]['ppl_tuned']} (token-weighted, its validation set)"
    )
    print(f"{'file':12} {'size MB':>8} {'write s':>8} {'measure s':>9} {'ppl':>8} {'gain kept':>9}")
    for r in rows:
        kept = "" if r["gain_kept"] is None else f"{r['gain_kept']:.0%}"
        print(
            f"{r['file']:12} {r['size_mb']:8.1f} {r['write_s']:8.1f} {r['measure_s']:9.1f} "
            f"{r['ppl_file']:8.3f} {kept:>9}"
        )
    print("llama.cpp's own quantizer from the f16 file (naive: the tuned tensors go to the type too):")
    for b in baseline:
        print(f"  {b['type']:6} {b['seconds']:6.1f} s  {b['size_mb']:7.1f} MB")
    print(f"eval, {args.eval_examples} Self-Instruct instances, max length 512:")
    for e in evals:
        print(
            f"  {e['model']:36} {e['engine']:22} {e['seconds_per_100']:7.1f} s / 100 examples  "
            f"{e['answer_tokens_per_s']:7.1f} answer tokens/s  ppl mean {e['ppl_mean']}"
        )
    if args.json:
        print(json.dumps({"files": rows, "llama_cpp_quantize": baseline, "eval": evals}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
