"""Chat with a GGUF model: sampling defaults, the conversation, answers streamed token by token.

A model (with an optional LoRA adapter, applied at run time) is served by llama.cpp's own
server in-process (curator.llm_server) and talked to through the `openai` client, so `curator
chat`, the app's Chat page and `curator serve` run the same code path, and the server applies
the model's own chat template (`tokenizer.chat_template` in the GGUF).

Why xllamacpp and not llama-cpp-python for chat: a fresh machine installs xllamacpp's prebuilt
wheel (~34 MB) in seconds, and it carries llama.cpp's C++ server with runtime LoRA, streaming and
parallel slots. llama-cpp-python compiles llama.cpp on install (minutes, and a compiler) for
what chat does not need: full logits, which only perplexity needs (`curator eval`).
"""

from __future__ import annotations

import os
import socket
import struct
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from curator import llm_server
from curator.errors import UserError


@dataclass(frozen=True)
class Sampling:
    """How answers are drawn. The defaults are GPT4All's CLI's (and close to 42dot's)."""

    temperature: float = 0.5  # 0: greedy, the same answer every time
    top_p: float = 0.95
    top_k: int = 40
    repeat_penalty: float = 1.2
    max_tokens: int = 512

    def request(self) -> dict:
        """Keyword arguments for `chat.completions.create`; llama.cpp reads top_k and
        repeat_penalty from the body's extra fields (the OpenAI schema has neither)."""
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "extra_body": {"top_k": self.top_k, "repeat_penalty": self.repeat_penalty},
        }


@dataclass
class Conversation:
    """The system prompt and the finished (prompt, answer) turns, oldest first."""

    system: str | None = None
    turns: list[tuple[str, str]] = field(default_factory=list)

    def messages(self, prompt: str) -> list[dict]:
        """The whole conversation with `prompt` as the next user message."""
        messages = [{"role": "system", "content": self.system}] if self.system else []
        for asked, answered in self.turns:
            messages += [{"role": "user", "content": asked}, {"role": "assistant", "content": answered}]
        return messages + [{"role": "user", "content": prompt}]


class Reply:
    """One answer as it streams: iterate for text pieces; afterwards text, tokens, seconds."""

    def __init__(self, stream, started: float):
        self._stream = stream
        self._started = started
        self.text = ""
        self.tokens = 0  # completion tokens as the server counted them
        self.seconds = 0.0  # request sent to last token, prompt processing included
        self.finish_reason: str | None = None  # "stop", or "length" when max_tokens cut it

    def __iter__(self) -> Iterator[str]:
        for chunk in self._stream:
            if chunk.usage:
                self.tokens = chunk.usage.completion_tokens
            for choice in chunk.choices:
                self.finish_reason = choice.finish_reason or self.finish_reason
                if choice.delta.content:
                    self.text += choice.delta.content
                    yield choice.delta.content
        self.seconds = time.perf_counter() - self._started

    @property
    def tokens_per_s(self) -> float:
        return self.tokens / self.seconds if self.seconds else 0.0

    def close(self) -> None:
        """Stop early: the server stops generating when the connection closes."""
        self._stream.close()


def serve(
    model: str | os.PathLike | None = None,
    lora: str | os.PathLike | None = None,
    *,
    port: int = 0,
    host: str = "127.0.0.1",
    **options,
) -> llm_server.LocalServer:
    """llm_server.start with a clear error where llama.cpp only says it could not start."""
    try:
        return llm_server.start(model, lora=lora, port=port, host=host, **options)
    except RuntimeError as err:  # xllamacpp: "Failed to init server, please check the input params."
        if port and not _can_bind(host, port):
            raise UserError(f"cannot listen on {host}:{port}: in use, or not an address of this machine") from None
        what = f"{model or llm_server.bundled_model()}" + (f" with the adapter {lora}" if lora else "")
        raise UserError(
            f"llama.cpp could not load {what}: is it a GGUF model (and a LoRA GGUF made for that model)? ({err})"
        ) from None


def _can_bind(host: str, port: int) -> bool:
    try:
        with socket.create_server((host, port)):
            return True
    except OSError:
        return False


class ChatModel:
    """A GGUF model, and optionally a LoRA adapter for it, served locally for chatting."""

    def __init__(
        self,
        model: str | os.PathLike | None = None,
        lora: str | os.PathLike | None = None,
        *,
        context: int = 2048,
        n_parallel: int = 1,
        threads: int | None = None,
    ):
        import openai  # here and in reply(): the CLI starts without it unless a model is opened

        self.label = label(model, lora)
        self.server = serve(model, lora, context=context, n_parallel=n_parallel, threads=threads)
        # No key: the server is on loopback and asks for none (the client insists on a string).
        self.client = openai.OpenAI(base_url=self.server.base_url, api_key="local", max_retries=0)

    def reply(self, conversation: Conversation, prompt: str, sampling: Sampling = Sampling()) -> Reply:
        """Start answering `prompt` after the conversation so far. When the whole conversation
        no longer fits the context, the oldest turns are forgotten (dropped from it) first."""
        import openai

        while True:
            started = time.perf_counter()
            try:
                stream = self.client.chat.completions.create(
                    model=self.server.model,
                    messages=conversation.messages(prompt),
                    stream=True,
                    stream_options={"include_usage": True},
                    **sampling.request(),
                )
                return Reply(stream, started)
            except openai.BadRequestError as err:
                if not isinstance(err.body, dict) or err.body.get("type") != "exceed_context_size_error":
                    raise
                if not conversation.turns:
                    raise UserError(
                        f"the prompt does not fit the model's context of {self.server.context} tokens"
                    ) from None
                conversation.turns.pop(0)

    def close(self) -> None:
        self.server.stop()


def label(model: str | os.PathLike | None, lora: str | os.PathLike | None = None) -> str:
    """How a model is named on screen: the file (or the bundled model's name), plus its adapter."""
    name = Path(model).name if model else llm_server.BUNDLED_MODEL_NAME
    return f"{name} + {Path(lora).name}" if lora else name


# --- Finding GGUF files ------------------------------------------------------------------------

# gguf.GGUFReader parses every tokenizer entry (seconds per file); listing needs one key, which
# writers put before the large arrays, so reading the header up to it is enough.
_SCALARS = {0: "B", 1: "b", 2: "H", 3: "h", 4: "I", 5: "i", 6: "f", 7: "?", 10: "Q", 11: "q", 12: "d"}
_STRING, _ARRAY = 8, 9


def gguf_type(path: str | os.PathLike) -> str | None:
    """general.type of a GGUF file ("model", "adapter", ...); "model" where the writer left it
    out (older files; llama.cpp reads them as models); None if not a GGUF file."""
    try:
        with open(path, "rb") as f:
            if f.read(4) != b"GGUF":
                return None
            _version, _tensors, n_keys = struct.unpack("<IQQ", f.read(20))
            for _ in range(n_keys):
                key = _read_string(f)
                (kind,) = struct.unpack("<I", f.read(4))
                if key == "general.type" and kind == _STRING:
                    return _read_string(f)
                if kind == _ARRAY:
                    break  # past the short keys (tokenizer arrays): not written
                _skip_value(f, kind)
    except (OSError, struct.error, UnicodeDecodeError, KeyError):
        return None
    return "model"


def _read_string(f) -> str:
    (length,) = struct.unpack("<Q", f.read(8))
    return f.read(length).decode("utf-8")


def _skip_value(f, kind: int) -> None:
    if kind == _STRING:
        (length,) = struct.unpack("<Q", f.read(8))
        f.seek(length, os.SEEK_CUR)
    else:
        f.seek(struct.calcsize("<" + _SCALARS[kind]), os.SEEK_CUR)


def find_gguf(folders: list[str | os.PathLike], max_depth: int = 4) -> dict[str, list[Path]]:
    """GGUF files under the folders (hidden folders skipped), as {"model": [...], "adapter": [...]}."""
    found: dict[str, list[Path]] = {"model": [], "adapter": []}
    seen: set[Path] = set()
    for folder in map(Path, folders):
        for root, dirs, files in os.walk(folder):
            depth = len(Path(root).relative_to(folder).parts)
            dirs[:] = [] if depth >= max_depth else sorted(d for d in dirs if not d.startswith("."))
            for name in sorted(n for n in files if n.endswith(".gguf")):
                path = (Path(root) / name).resolve()
                kind = None if path in seen else gguf_type(path)
                if kind:
                    seen.add(path)
                    found.setdefault(kind, []).append(path)
    return found
