"""The quantize job: write a GGUF of a training run, then measure what it kept of the tuning.

After the file is written, the run's own validation examples (the seeded subset it measured
itself on, its template and max length) are scored three ways: the base and the tuned model
in torch (the references), and the file in llama.cpp (for --adapter-only: the base GGUF with
the adapter applied at run time). gain_kept = (ppl_base - ppl_file) / (ppl_base - ppl_tuned).
The two references depend only on the run, so they are computed once and kept in
RUN_DIR/ppl_reference.json (keyed by the examples' tokens and the adapter's bytes).

Which perplexity. The token-weighted one, exp(mean loss over every answer token of the set):
the trainer's own validation perplexity (the same figure for base and tuned as in
train_report.json) and the usual yardstick for quantization. The per-example mean clipped at
100 (`curator eval`'s headline, GPT4All's) is recorded too, but on short answers it swings
with single tokens: on the test run, a Q8_0 file that is -0.02% token-weighted reads +1.6%
on it.

Every file's figures go into quant_report.json in the file's directory, one entry per file
name, so a directory of q8_0 / q4_1 / adapter files holds one comparable table.
"""

from __future__ import annotations

import hashlib
import json
import os
import time
from dataclasses import asdict
from pathlib import Path

from transformers import AutoTokenizer

from curator import evaluation, gguf_export, training
from jobs.runner import Job, Progress, no_progress
from storage.db import Database

REPORT_NAME = "quant_report.json"
REFERENCE_NAME = "ppl_reference.json"
LOW_GAIN = 0.5  # below this share of the tuning gain kept, the file is flagged


def quantize(
    db: Database,
    run_dir: str | Path,
    out: str | Path,
    qtype: str,
    *,
    adapter_only: bool = False,
    plain: bool = False,
    base_gguf: str | Path | None = None,
    progress: Progress = no_progress,
) -> dict:
    """Write run_dir's model (or adapter) to `out` and return its quant_report.json entry."""
    run_dir, out = Path(run_dir).resolve(), Path(out).resolve()
    params = {
        "run": str(run_dir),
        "out": str(out),
        "type": None if adapter_only else qtype,
        "adapter_only": adapter_only,
        "plain": plain,
        "base_gguf": str(base_gguf) if base_gguf else None,
    }
    with Job(db, "quantize", params, progress) as job:
        job.report(0, 4, f"writing {out.name}")
        began = time.perf_counter()
        if adapter_only:
            written = gguf_export.write_adapter(run_dir, out, base_gguf=base_gguf)
        else:
            written = gguf_export.write_merged(run_dir, out, qtype, plain=plain, base_gguf=base_gguf)
        write_seconds = time.perf_counter() - began

        examples, template, max_length = evaluation.run_val_set(run_dir)
        tokenizer = AutoTokenizer.from_pretrained(run_dir)  # the run saved its tokenizer, pad included
        encoded, _ = training.encode_all(examples, tokenizer, training.chat_template(tokenizer, template), max_length)
        job.report(1, 4, f"base and tuned perplexity on {len(encoded)} validation examples (torch)")
        reference = _reference(run_dir, encoded)
        job.report(2, 4, f"perplexity of {out.name} (llama.cpp)")
        began = time.perf_counter()
        model = (
            evaluation.GgufModel(written.base_gguf, out, n_ctx=max_length)
            if adapter_only
            else evaluation.GgufModel(out, n_ctx=max_length)
        )
        measured = evaluation.score_encoded(model, encoded).summary()
        entry = _entry(
            run_dir,
            written,
            reference,
            measured,
            adapter_only,
            qtype,
            plain,
            write_seconds,
            time.perf_counter() - began,
        )
        _record(out.parent / REPORT_NAME, out.name, entry)
        job.counts = {
            "file": str(out),
            "size_bytes": entry["size_bytes"],
            "ppl_file": entry["ppl_file"],
            "gain_kept": entry["gain_kept"],
        }
        job.report(4, 4, "done")
        return entry


def _reference(run_dir: Path, encoded: list[training.Encoded]) -> dict:
    """{"base": summary, "tuned": summary} of the run's validation examples in torch, cached."""
    digest = hashlib.sha256((run_dir / "adapter_model.safetensors").read_bytes())
    digest.update(json.dumps([[e.input_ids, e.labels] for e in encoded]).encode())
    key = digest.hexdigest()
    path = run_dir / REFERENCE_NAME
    if path.is_file():
        cached = json.loads(path.read_text())
        if cached.get("key") == key:
            return cached
    base_path = training.read_report(run_dir)["base_path"]
    reference = {
        "key": key,
        "base": evaluation.score_encoded(evaluation.TorchModel(base_path), encoded).summary(),
        "tuned": evaluation.score_encoded(evaluation.TorchModel(str(run_dir)), encoded).summary(),
    }
    path.write_text(json.dumps(reference, indent=2))
    return reference


def _entry(
    run_dir: Path,
    written: gguf_export.Written,
    reference: dict,
    measured: dict,
    adapter_only: bool,
    qtype: str,
    plain: bool,
    write_seconds: float,
    measure_seconds: float,
) -> dict:
    base, tuned = reference["base"], reference["tuned"]
    kept = evaluation.gain_kept(base["ppl_tokens"], tuned["ppl_tokens"], measured["ppl_tokens"])
    if kept is None:
        warning = "the run did not lower validation perplexity: there is no tuning gain to keep"
    elif kept < LOW_GAIN:
        warning = f"this file keeps {kept:.0%} of the tuning's perplexity gain (less than half)"
        if plain:
            warning += ": --plain rounds the tuned tensors onto the 4-bit grid; drop it"
        elif written.requantized_tensors:
            warning += (
                f": {written.requantized_tensors} untouched tensors were moved from the base's grid onto "
                f"{qtype}; a file of the base's own type copies them losslessly"
            )
    else:
        warning = None
    written_fields = asdict(written)
    written_fields.update(path=str(written.path), base_gguf=str(written.base_gguf))
    return {
        **written_fields,
        "type": "adapter" if adapter_only else qtype,
        "plain": plain,
        "runs_with": str(written.base_gguf) if adapter_only else None,
        "base_gguf_size_bytes": os.path.getsize(written.base_gguf),
        "run": str(run_dir),
        "examples": measured["n"],
        "ppl_base": base["ppl_tokens"],
        "ppl_tuned": tuned["ppl_tokens"],
        "ppl_file": measured["ppl_tokens"],
        "ppl_mean_clipped": {"base": base["ppl_mean"], "tuned": tuned["ppl_mean"], "file": measured["ppl_mean"]},
        "engines": {"base": base["engine"], "tuned": tuned["engine"], "file": measured["engine"]},
        "gain_kept": kept,
        "warning": warning,
        "seconds": {"write": round(write_seconds, 2), "measure_file": round(measure_seconds, 2)},
    }


def _record(path: Path, name: str, entry: dict) -> None:
    """Add or replace the file's entry in the directory's report (replaced whole, atomically)."""
    report = json.loads(path.read_text()) if path.is_file() else {"files": {}}
    report["files"][name] = entry
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    partial.write_text(json.dumps(report, indent=2))
    os.replace(partial, path)
