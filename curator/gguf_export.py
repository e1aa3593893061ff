"""A trained LoRA run as GGUF files for llama.cpp: merged into the base, or the adapter alone.

Where everything comes from. The base is a GGUF file of the model the run was trained on
(the bundled SmolLM2-135M-Instruct Q4_1 for runs on the default base). Its metadata is copied
as it is: architecture hyperparameters, the tokenizer (vocabulary, merges, special ids) and
`tokenizer.chat_template`, so the new file tokenizes and chats exactly like the base. Its
tensors, already named and laid out the llama.cpp way, are the base weights. The run's PEFT
adapter adds scale·B·A to each targeted linear layer; the delta is mapped to llama.cpp's
tensor names (gguf's own name table) and, for the llama architecture, q and k rows are
permuted per head the way llama.cpp's converter permutes them (Hugging Face's rotate-half
rotary layout to llama.cpp's interleaved one).

Which tensor gets which type, and why 4-bit files keep the fine-tune. Measured on the
bundled base, a small LoRA delta re-quantized onto a 4-bit grid is mostly rounded away
(a rank-8 delta of 3% of the weights' spread keeps ~19% of itself under Q4_1), while Q8_0
keeps all of it. So in a file of a 4- or 5-bit type:
  - tensors the adapter changed are written at Q8_0 (--plain writes them at the 4-bit type:
    the naive merge-then-quantize file, kept for comparison);
  - tensors it did not change take the requested type, except where the base already holds
    them quantized at no more bits per weight: then their blocks are copied byte for byte,
    because another grid could only re-round values the base's grid holds exactly. For the
    bundled Q4_1 base, q4_1, q5_0, q5_1 and q8_0 files are all lossless outside the tuned
    tensors (re-rounding its Q4_1 values onto Q8_0 cost +0.5% perplexity weights-only on the
    test run); q4_0, a smaller grid, re-quantizes them and costs much more (README figures).
    From a full-precision base (F16/F32) every untouched tensor takes the requested type;
  - token embeddings and the output matrix are at Q8_0 (or copied when the base has them at
    Q8_0), 1-D tensors (norms) stay F32, as llama.cpp's own quantizer does.
An f16 file is F16 throughout: the unquantized reference, and the input llama.cpp's own
quantizer takes for the types this module does not write (K-quants).
The cost is the tuned tensors' extra bits: the report's `keep_cost_bytes` (for the default
q_proj+v_proj adapter on SmolLM2-135M, 60 tensors of 13.3M weights: ~5.8 MB, ~6%).

--adapter-only writes the adapter as a GGUF LoRA (general.type "adapter", adapter.type "lora",
adapter.lora.alpha, tensors `<base tensor>.lora_a` / `.lora_b` in F32) that llama.cpp applies
to the unchanged base GGUF at run time: the base's 4-bit file plus ~2 MB, and nothing of the
tuning is quantized at all.
"""

from __future__ import annotations

import json
import os
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from curator import chat_tokens, training
from curator.config import GGUF_TYPES
from curator.errors import UserError

# Architectures whose q/k projections llama.cpp stores permuted per head (its converter's
# LlamaModel family; SmolLM2, Llama and Mistral files all say "llama").
SUPPORTED_ARCHS = ("llama",)


def ggml_type(name: str):
    from gguf import GGMLQuantizationType

    if name not in GGUF_TYPES:
        raise UserError(f"unknown type {name!r}; choose one of {', '.join(GGUF_TYPES)}")
    return GGMLQuantizationType[name.upper()]


@dataclass
class Lora:
    """The adapter of a run, in the base GGUF's terms: {gguf tensor name: (A, B)} with B's
    rows already in llama.cpp's layout, and the factor that multiplies B·A."""

    pairs: dict[str, tuple[np.ndarray, np.ndarray]]
    scale: float
    rank: int

    def delta(self, name: str) -> np.ndarray:
        a, b = self.pairs[name]
        return self.scale * (b @ a)


@dataclass
class Written:
    path: Path
    size_bytes: int
    base_gguf: Path
    tensor_types: dict[str, int]  # {"Q8_0": 61, "Q4_1": 150, ...}
    tuned_tensors: int  # tensors the adapter changed
    tuned_type: str | None  # their type in the file (None for --adapter-only)
    keep_cost_bytes: int = 0  # extra bytes for keeping tuned tensors above the file's type
    copied_tensors: int = 0  # tensors whose blocks were copied from the base unchanged
    requantized_tensors: int = 0  # untouched tensors moved from the base's grid onto another one


def base_gguf_for(run_dir: str | Path, given: str | Path | None = None) -> Path:
    """The GGUF of the run's base: `given`, or the bundled file for runs on the bundled base."""
    if given:
        path = Path(given).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF file at {path}")
        return path
    report = training.read_report(run_dir)
    if report["base_path"] == str(training.bundled_base_dir()):
        return chat_tokens.bundled_gguf()
    raise UserError(
        f"{run_dir} was trained on {report['base']}: pass --base-gguf, a GGUF of that base model "
        "(llama.cpp's convert_hf_to_gguf.py writes one)"
    )


def read_lora(run_dir: str | Path, reader) -> Lora:
    """The run's PEFT adapter mapped onto the tensors of the base GGUF `reader` describes."""
    import gguf
    from safetensors.numpy import load_file

    run_dir = Path(run_dir)
    config = json.loads((run_dir / "adapter_config.json").read_text())
    for key in ("use_dora", "modules_to_save", "rank_pattern", "alpha_pattern"):
        if config.get(key):
            raise UserError(f"{run_dir}: adapters with {key} are not supported in GGUF export")
    arch = _field(reader, "general.architecture")
    if arch not in SUPPORTED_ARCHS:
        raise UserError(f"base architecture {arch!r} is not supported (only {', '.join(SUPPORTED_ARCHS)})")
    n_blocks = _field(reader, f"{arch}.block_count")
    heads = {
        "attn_q": _field(reader, f"{arch}.attention.head_count"),
        "attn_k": _field(reader, f"{arch}.attention.head_count_kv"),
    }
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, n_blocks)
    shapes = {t.name: tuple(int(n) for n in reversed(t.shape)) for t in reader.tensors}  # numpy (out, in)
    weights = load_file(run_dir / "adapter_model.safetensors")
    pairs = {}
    for key in weights:
        if ".lora_A." not in key:
            continue
        module = key.removeprefix("base_model.model.").split(".lora_A.")[0]
        name = names.get_name(module + ".weight", try_suffixes=(".weight",))
        if name is None or name not in shapes:
            raise UserError(f"{run_dir}: adapter module {module} has no tensor in the base GGUF")
        a = weights[key].astype(np.float32)
        b = weights[key.replace(".lora_A.", ".lora_B.")].astype(np.float32)
        if (b.shape[0], a.shape[1]) != shapes[name]:
            raise UserError(
                f"{run_dir}: adapter {module} is {b.shape[0]}x{a.shape[1]}, the base's {name} "
                f"is {shapes[name][0]}x{shapes[name][1]}: not the same base model"
            )
        kind = name.split(".")[2]
        if kind in heads:
            b = permute_rows(b, heads[kind])
        pairs[name] = (a, b)
    if not pairs:
        raise UserError(f"{run_dir}: the adapter holds no LoRA weights")
    rank = int(config["r"])
    scale = config["lora_alpha"] / (rank**0.5 if config.get("use_rslora") else rank)
    return Lora(pairs, scale, rank)


def permute_rows(rows: np.ndarray, n_head: int) -> np.ndarray:
    """Rows of a q or k projection from Hugging Face's layout (each head's two rotary halves
    one after the other) to llama.cpp's (the halves interleaved, pair by pair)."""
    out = rows.shape[0]
    return rows.reshape(n_head, 2, out // n_head // 2, *rows.shape[1:]).swapaxes(1, 2).reshape(rows.shape)


def _field(reader, key: str):
    if key not in reader.fields:
        raise UserError(f"the base GGUF has no {key}")
    return reader.fields[key].contents()


def target_type(name: str, n_dims: int, qtype, tuned: bool, plain: bool):
    """The type a tensor takes in a file of type qtype (see the module docstring)."""
    from gguf import GGMLQuantizationType as Q

    if n_dims == 1:
        return Q.F32
    if qtype == Q.F16:
        return Q.F16
    if name in ("token_embd.weight", "output.weight") or (tuned and not plain):
        return Q.Q8_0
    return qtype


def write_merged(
    run_dir: str | Path, out: str | Path, qtype_name: str, *, plain: bool = False, base_gguf: str | Path | None = None
) -> Written:
    """The base with the run's adapter merged in, as a GGUF of type qtype_name."""
    from gguf import GGMLQuantizationType as Q
    from gguf import GGUFReader, LlamaFileType, quants

    qtype = ggml_type(qtype_name)
    base = base_gguf_for(run_dir, base_gguf)
    reader = GGUFReader(base)
    lora = read_lora(run_dir, reader)
    file_type = LlamaFileType.MOSTLY_F16 if qtype == Q.F16 else LlamaFileType[f"MOSTLY_{qtype.name}"]
    types, copied, requantized, keep_cost, tuned_type = Counter(), 0, 0, 0, None
    with _Writer(out, reader, "model") as writer:
        writer.add_uint32("general.file_type", int(file_type))
        for tensor in reader.tensors:
            tuned = tensor.name in lora.pairs
            kind = target_type(tensor.name, len(tensor.shape), qtype, tuned, plain)
            if not tuned and keeps_base_blocks(tensor.tensor_type, kind):
                writer.add_tensor(tensor.name, tensor.data, raw_dtype=tensor.tensor_type)
                types[tensor.tensor_type.name] += 1
                copied += 1
                continue
            types[kind.name] += 1
            weights = quants.dequantize(tensor.data, tensor.tensor_type)
            if tuned:
                weights, tuned_type = weights + lora.delta(tensor.name), kind.name
                keep_cost += _nbytes(weights.size, kind) - _nbytes(weights.size, qtype)
            elif kind not in (Q.F32, Q.F16):
                requantized += 1
            if kind in (Q.F32, Q.F16):
                writer.add_tensor(tensor.name, weights.astype(np.float32 if kind == Q.F32 else np.float16))
            else:
                writer.add_tensor(tensor.name, quants.quantize(weights, kind), raw_dtype=kind)
    return Written(
        Path(out),
        Path(out).stat().st_size,
        base,
        dict(types),
        len(lora.pairs),
        tuned_type,
        keep_cost,
        copied,
        requantized,
    )


def write_adapter(run_dir: str | Path, out: str | Path, *, base_gguf: str | Path | None = None) -> Written:
    """The run's adapter as a GGUF LoRA for llama.cpp (`--lora` in its tools), in F32."""
    from gguf import GGUFReader, Keys

    base = base_gguf_for(run_dir, base_gguf)
    reader = GGUFReader(base)
    lora = read_lora(run_dir, reader)
    with _Writer(out, reader, "adapter") as writer:
        writer.add_string(Keys.Adapter.TYPE, "lora")
        # llama.cpp scales by alpha / rank, the rank read from the tensors' shapes; an alpha of
        # scale·rank gives PEFT's scale for plain and rank-stabilized LoRA alike.
        writer.add_float32(Keys.Adapter.LORA_ALPHA, lora.scale * lora.rank)
        for name, (a, b) in lora.pairs.items():
            writer.add_tensor(f"{name}.lora_a", np.ascontiguousarray(a))
            writer.add_tensor(f"{name}.lora_b", np.ascontiguousarray(b))
    return Written(Path(out), Path(out).stat().st_size, base, {"F32": 2 * len(lora.pairs)}, len(lora.pairs), None)


def keeps_base_blocks(base_type, kind) -> bool:
    """Whether an untouched tensor stored as base_type is copied rather than written as kind:
    the same type, or both quantized and the base's grid no finer than kind's."""
    from gguf import GGML_QUANT_SIZES
    from gguf import GGMLQuantizationType as Q

    if base_type == kind:
        return True
    if {base_type, kind} & {Q.F32, Q.F16, Q.BF16}:
        return False

    def bits(kind) -> float:
        block, size = GGML_QUANT_SIZES[kind]
        return 8 * size / block

    return bits(base_type) <= bits(kind)


def _nbytes(n_weights: int, kind) -> int:
    from gguf import GGML_QUANT_SIZES

    block, size = GGML_QUANT_SIZES[kind]
    return n_weights // block * size


class _Writer:
    """A GGUFWriter for `out` with the base's metadata: everything for a model, only the
    descriptive fields for an adapter. Written beside the target and renamed into place at
    the end, so an interrupted export never leaves a truncated file that llama.cpp would
    try to load."""

    # What an adapter carries over: llama.cpp checks the architecture; names say what it is.
    ADAPTER_KEYS = ("general.name", "general.basename", "general.size_label")

    def __init__(self, out: str | Path, reader, kind: str):
        from gguf import GGUFWriter

        self.out = Path(out)
        self.partial = self.out.with_name(f".{self.out.name}.{os.getpid()}.partial")
        self.out.parent.mkdir(parents=True, exist_ok=True)
        self.writer = GGUFWriter(self.partial, _field(reader, "general.architecture"))
        self.writer.add_type(kind)
        for key, value in reader.fields.items():
            if key.startswith("GGUF.") or key in ("general.architecture", "general.type", "general.file_type"):
                continue
            if kind == "adapter" and key not in self.ADAPTER_KEYS:
                continue
            sub_type = value.types[-1] if len(value.types) > 1 else None
            self.writer.add_key_value(key, value.contents(), value.types[0], sub_type=sub_type)

    def __enter__(self):
        return self.writer

    def __exit__(self, error_type, error, traceback) -> bool:
        try:
            if error is None:
                self.writer.write_header_to_file()
                self.writer.write_kv_data_to_file()
                self.writer.write_tensors_to_file()
            self.writer.close()
            if error is None:
                os.replace(self.partial, self.out)
        finally:
            self.partial.unlink(missing_ok=True)
        return False
