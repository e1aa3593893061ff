"""Response perplexity: how well a model predicts held-out answers, given their prompts.

Per example, the conversation is rendered with a chat template and only the answer's tokens
are scored, each predicted from the prompt and the answer so far (GPT4All's script scored
the answer without its prompt). Perplexity = exp(mean loss over those tokens), clipped at
100 as GPT4All did, so that a few garbled answers cannot dominate a mean. Per model: mean
and median of the clipped values, and the token-weighted perplexity (unclipped).

Engines. Torch models (a Hugging Face name or directory, or a `curator train` run: its base
with its adapter) run in torch, through the trainer's own loss code. GGUF files run in
llama.cpp (llama-cpp-python's bindings), with the file's own quantized kernels and
optionally a GGUF LoRA applied at run time: the figure a user of the file gets, not a torch
simulation of it. Logits are requested only where the next token is scored, so the 49k-wide
output layer never runs on prompt positions.

Data: JSONL of prompt/response (or any format `curator ingest` reads), an export directory
(its val.jsonl), or Self-Instruct tasks ({instruction, instances: [{input, output}]}: one
example per instance, instruction and input joined as for Alpaca).
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curator import chat_tokens, formats, libraries, readers, training
from curator.errors import UserError

CLIP = 100.0
DEFAULT_MAX_LENGTH = 1024
Done = Callable[[int], None]  # done(examples scored so far)


# --- data --------------------------------------------------------------------------------


def read_eval_examples(path: str | Path) -> list[training.Example]:
    """The examples of an evaluation file or export directory (see the module docstring)."""
    path = Path(path)
    if path.is_dir():
        path = path / "val.jsonl"
        if not path.is_file():
            raise FileNotFoundError(f"{path.parent} is a directory without val.jsonl (not an export)")
    first = next((record for batch in readers.read_batches(path) for record in batch.values), None)
    if isinstance(first, dict) and "instances" in first and "instruction" in first:
        return _self_instruct(path)
    return training.read_examples(path)[0]


def _self_instruct(path: Path) -> list[training.Example]:
    examples = []
    for batch in readers.read_batches(path):
        for line, task in zip(batch.lines, batch.values):
            for instance in task.get("instances", []):
                record = {
                    "instruction": task["instruction"],
                    "input": instance.get("input", ""),
                    "output": instance.get("output", ""),
                }
                try:
                    pair = formats.record_pairs(record, "alpaca")[0]
                except formats.RecordError:
                    continue  # an instance without an answer: nothing to score
                examples.append(
                    training.Example(
                        line,
                        [{"role": "user", "content": pair.prompt}, {"role": "assistant", "content": pair.response}],
                        pair.prompt,
                        pair.response,
                    )
                )
    if not examples:
        raise UserError(f"{path}: no Self-Instruct instance with an answer")
    return examples


def run_val_set(run_dir: str | Path) -> tuple[list[training.Example], str, int]:
    """The validation examples a `curator train` run measured itself on (the same seeded
    subset), with its template and max length."""
    settings = json.loads((Path(run_dir) / "train_config.json").read_text())
    config = training.TrainConfig(**{**settings, "out": str(run_dir)})
    return training.load_dataset(config).val, config.template, config.max_length


# --- models ------------------------------------------------------------------------------


class TorchModel:
    """A Hugging Face model name or directory, or a `curator train` run (base + adapter)."""

    def __init__(self, spec: str, batch_size: int = 16):
        self.name, self.batch_size = spec, batch_size
        self.device, dtype = training.device_and_dtype()
        run = Path(spec).expanduser()
        if (run / "adapter_config.json").is_file():
            with libraries.quietly():
                from peft import PeftModel

            report = training.read_report(run)
            model, self.tokenizer, _, _ = training.load_base(report["base_path"], self.device, dtype)
            self.model = PeftModel.from_pretrained(model, run)
        else:
            self.model, self.tokenizer, _, _ = training.load_base(spec, self.device, dtype)
        self.engine = f"torch ({str(dtype).removeprefix('torch.')}, {self.device.type})"

    def losses(self, encoded: list[training.Encoded], done: Done | None = None) -> tuple[list[float], list[int]]:
        return training.example_losses(
            self.model, encoded, self.tokenizer.pad_token_id, self.device, self.batch_size, done
        )


class GgufModel:
    """A GGUF file run by llama.cpp, optionally with a GGUF LoRA adapter applied at run time."""

    def __init__(self, path: str | Path, lora: str | Path | None = None, n_ctx: int = DEFAULT_MAX_LENGTH):
        # Passive OpenMP waiting (see cli/main.py); effective only if no OpenMP runtime has
        # loaded yet in this process, as when this is used as a library without torch.
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        import llama_cpp

        self.path, self.lora = Path(path), Path(lora) if lora else None
        for file in filter(None, (self.path, self.lora)):
            if not file.is_file():
                raise FileNotFoundError(f"no GGUF file at {file}")
        self.name = str(path) + (f" + {lora}" if lora else "")
        self.engine = "llama.cpp" + (" (LoRA applied at run time)" if lora else "")
        self.n_ctx = n_ctx
        self.llm = llama_cpp.Llama(
            str(self.path), n_ctx=n_ctx, n_batch=n_ctx, verbose=False, lora_path=str(self.lora) if self.lora else None
        )
        self._tokenizer = None

    @property
    def tokenizer(self):
        """The file's own vocabulary and chat template (built on first use: ~seconds per file)."""
        if self._tokenizer is None:
            self._tokenizer = chat_tokens.transformers_tokenizer(str(self.path))
        return self._tokenizer

    def losses(self, encoded: list[training.Encoded], done: Done | None = None) -> tuple[list[float], list[int]]:
        means, counts = [], []
        for k, example in enumerate(encoded):
            ids, labels = example.input_ids, example.labels
            # The logits at position t predict token t + 1: asked for only where that token is scored.
            scored = [t for t in range(len(ids) - 1) if labels[t + 1] != training.IGNORE]
            means.append(float(token_nll(self.logits_at(ids, scored), [ids[t + 1] for t in scored]).mean()))
            counts.append(len(scored))
            if done:
                done(k + 1)
        return means, counts

    def logits_at(self, ids: list[int], positions: list[int]) -> np.ndarray:
        """Logits after each of `positions` (ascending) in one pass over the sequence `ids`."""
        import llama_cpp

        if len(ids) > self.n_ctx:
            raise UserError(f"a sequence of {len(ids)} tokens is longer than the context ({self.n_ctx})")
        ctx, wanted = self.llm.ctx, set(positions)
        batch = llama_cpp.llama_batch_init(len(ids), 0, 1)
        try:
            for t, token in enumerate(ids):
                batch.token[t], batch.pos[t], batch.n_seq_id[t] = token, t, 1
                batch.seq_id[t][0] = 0
                batch.logits[t] = t in wanted
            batch.n_tokens = len(ids)
            llama_cpp.llama_memory_clear(llama_cpp.llama_get_memory(ctx), True)
            if llama_cpp.llama_decode(ctx, batch) != 0:
                raise RuntimeError(f"llama.cpp could not decode a sequence of {len(ids)} tokens")
            logits = llama_cpp.llama_get_logits(ctx)
            return np.ctypeslib.as_array(logits, shape=(len(positions), self.llm.n_vocab())).copy()
        finally:
            llama_cpp.llama_batch_free(batch)


def token_nll(logits: np.ndarray, targets: list[int]) -> np.ndarray:
    """Negative log-likelihood of each row's target under a softmax of its logits (float64)."""
    logits = logits.astype(np.float64)
    peak = logits.max(axis=1, keepdims=True)
    log_norm = np.log(np.exp(logits - peak).sum(axis=1)) + peak[:, 0]
    return log_norm - logits[np.arange(len(targets)), targets]


def open_model(spec: str, lora: str | None = None, max_length: int = DEFAULT_MAX_LENGTH, batch_size: int = 16):
    """A GGUF file (with lora, if given) or a torch model (name, directory or training run;
    batch_size examples per forward pass)."""
    if spec.endswith(".gguf"):
        return GgufModel(spec, lora, n_ctx=max_length)
    return TorchModel(spec, batch_size)


# --- scores ------------------------------------------------------------------------------


@dataclass
class Scores:
    model: str
    engine: str
    ids: list[int]  # example ids (line numbers in the data file)
    ppl: list[float]  # per example, clipped at CLIP
    nll: list[float]  # per example: mean loss over the answer's tokens
    tokens: list[int]  # answer tokens scored per example
    seconds: float

    def summary(self) -> dict:
        total = sum(self.tokens)
        return {
            "model": self.model,
            "engine": self.engine,
            "n": len(self.ppl),
            "ppl_mean": statistics.fmean(self.ppl),
            "ppl_median": statistics.median(self.ppl),
            "ppl_tokens": math.exp(sum(n * c for n, c in zip(self.nll, self.tokens)) / total),
            "clipped": sum(p >= CLIP for p in self.ppl),
            "tokens": total,
            "seconds": round(self.seconds, 2),
        }


def score_encoded(model, encoded: list[training.Encoded], done: Done | None = None) -> Scores:
    """Perplexities of already tokenized examples (every model must share the vocabulary)."""
    began = time.perf_counter()
    nll, tokens = model.losses(encoded, done)
    return Scores(
        model.name,
        model.engine,
        [e.id for e in encoded],
        [min(math.exp(n), CLIP) for n in nll],
        nll,
        tokens,
        time.perf_counter() - began,
    )


def score(
    model,
    examples: list[training.Example],
    template: str = "model",
    max_length: int = DEFAULT_MAX_LENGTH,
    done: Done | None = None,
) -> Scores:
    """Perplexities of examples under the model's own tokenizer and template (or chatml,
    gpt4all). Examples whose answer falls entirely past max_length are left out."""
    tokenizer = model.tokenizer
    encoded, _ = training.encode_all(examples, tokenizer, training.chat_template(tokenizer, template), max_length)
    if not encoded:
        raise UserError(f"no example keeps an answer token within {max_length} tokens")
    return score_encoded(model, encoded, done)


def gain_kept(ppl_base: float, ppl_tuned: float, ppl_file: float) -> float | None:
    """Share of the tuning's perplexity gain a file keeps; None when tuning gained nothing."""
    if ppl_base <= ppl_tuned:
        return None
    return (ppl_base - ppl_file) / (ppl_base - ppl_tuned)


def plot_histograms(results: list[Scores], path: str | Path) -> None:
    """Overlaid histograms of per-example perplexity, one per model (GPT4All's figure)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4), dpi=100)
    bins = np.linspace(0, CLIP, 41)
    for result in results:
        ax.hist(
            result.ppl,
            bins=bins,
            alpha=0.5,
            label=f"{Path(result.model).name or result.model} (mean {statistics.fmean(result.ppl):.1f})",
        )
    ax.set_xlabel(f"response perplexity (clipped at {CLIP:.0f})")
    ax.set_ylabel("examples")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# --- lm-evaluation-harness (optional) ----------------------------------------------------


def lm_eval_installed() -> bool:
    import importlib.util

    return importlib.util.find_spec("lm_eval") is not None


def lm_eval_tasks(spec: str, tasks: list[str], limit: int | None = None) -> dict:
    """lm-evaluation-harness's results for a torch model (name, directory or training run) on
    `tasks` (GPT4All's suite: boolq, piqa, hellaswag, winogrande, arc_easy, arc_challenge,
    openbookqa). The harness fetches its datasets from the hub: it needs the internet."""
    import lm_eval

    run = Path(spec).expanduser()
    if (run / "adapter_config.json").is_file():
        model_args = f"pretrained={training.read_report(run)['base_path']},peft={run.resolve()}"
    else:
        model_args = f"pretrained={training.resolve_base(spec)[1]}"
    return lm_eval.simple_evaluate(model="hf", model_args=model_args, tasks=tasks, limit=limit)["results"]
