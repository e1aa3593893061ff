"""Chat benchmark: tokens/s of curator's chat path against raw llama.cpp on the same GGUF, same run.

    .venv/bin/python bench/chat.py                         # bundled SmolLM2, 4 prompts x 128 tokens, 3 rounds
    .venv/bin/python bench/chat.py MODEL.gguf --tokens 256 --rounds 5 --json

Engines, all in this process, on the same file with the same CPU threads and sampling (the chat
defaults at temperature 0), each answer exactly --tokens long (end of text ignored):

- ours: curator.chat.ChatModel.reply, streamed through the `openai` client over loopback HTTP,
  what `curator chat` and the Chat page do;
- server: the same llama.cpp server called in-process (xllamacpp's handle_chat_completions
  with a per-chunk callback): no HTTP, no openai, no curator code;
- llama.cpp: llama-cpp-python's own token loop (Llama.generate) on the prompt rendered with the
  GGUF's chat template: llama.cpp with no server at all (a different build of it, so this
  ratio also holds the two builds' difference).

tokens/s = answer tokens / seconds from sending the request to the last token (prompt
processing included, as a user waits), per answer. Every prompt goes to each engine in turn,
and the medians over all answers are compared. The goal: ours >= 0.95x each raw engine.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from curator import chat, llm_server  # noqa: E402

PROMPTS = [
    "Write a short poem about the sea.",
    "Explain how a bicycle works.",
    "Give three tips for learning a new language.",
    "Describe a walk through a forest in autumn.",
]


@dataclass(frozen=True)
class FixedLength(chat.Sampling):
    """The chat defaults plus ignore_eos: every answer is max_tokens long, the same work everywhere."""

    def request(self) -> dict:
        request = super().request()
        request["extra_body"] = {**request["extra_body"], "ignore_eos": True}
        return request


def ours(model: chat.ChatModel, prompt: str, sampling: chat.Sampling) -> int:
    reply = model.reply(chat.Conversation(), prompt, sampling)
    for _ in reply:
        pass
    return reply.tokens


def server(model: chat.ChatModel, prompt: str, sampling: chat.Sampling) -> int:
    request = sampling.request()
    request = {
        "model": model.server.model,
        "messages": [{"role": "user", "content": prompt}],
        "stream": True,
        **request.pop("extra_body"),
        **request,
    }
    chunks = []
    # The raw server, bypassing curator and HTTP (the object curator.llm_server keeps).
    model.server._server.handle_chat_completions(request, chunks.append)
    return chunks[-1]["timings"]["predicted_n"]


class RawLlama:
    """llama-cpp-python's token loop on the prompt as the GGUF's chat template renders it."""

    def __init__(self, path: str, threads: int):
        import llama_cpp
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        self.llm = llama_cpp.Llama(path, n_ctx=2048, n_threads=threads, n_threads_batch=threads, verbose=False)
        token_text = lambda token: self.llm.detokenize([token], special=True).decode()  # noqa: E731
        self.template = Jinja2ChatFormatter(
            self.llm.metadata["tokenizer.chat_template"],
            eos_token=token_text(self.llm.token_eos()),
            bos_token=token_text(self.llm.token_bos()),
        )

    def __call__(self, prompt: str, sampling: chat.Sampling) -> int:
        text = self.template(messages=[{"role": "user", "content": prompt}]).prompt
        tokens = self.llm.tokenize(text.encode(), add_bos=False, special=True)
        produced = 0
        # generate() keeps the prefix it shares with the last prompt, as the server's slot does.
        for _token in self.llm.generate(
            tokens,
            temp=sampling.temperature,
            top_k=sampling.top_k,
            top_p=sampling.top_p,
            repeat_penalty=sampling.repeat_penalty,
        ):
            produced += 1
            if produced == sampling.max_tokens:
                return produced
        return produced


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", help="GGUF file (default: the bundled SmolLM2-135M-Instruct Q4_1)")
    parser.add_argument("--tokens", type=int, default=128, help="answer length")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="CPU threads, every engine")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # as curator.llm_server sets it, for both bindings

    path = str(args.model or llm_server.bundled_model())
    sampling = FixedLength(temperature=0, max_tokens=args.tokens)
    model = chat.ChatModel(path, context=2048, threads=args.threads)
    raw = RawLlama(path, args.threads)
    engines = {
        "ours": lambda p: ours(model, p, sampling),
        "server": lambda p: server(model, p, sampling),
        "llama.cpp": lambda p: raw(p, sampling),
    }
    for run in engines.values():  # warm-up: page the weights in, build the graphs
        assert run(PROMPTS[0]) == args.tokens
    # Each prompt goes to every engine in turn, the order rotating, so that on a shared machine
    # the engines meet the same load (it changes within seconds).
    rates: dict[str, list[float]] = {name: [] for name in engines}
    client_cpu = {name: [0.0, 0] for name in engines}  # this thread's CPU seconds, tokens
    order = list(engines)
    for _ in range(args.rounds):
        for prompt in PROMPTS:
            for name in order:
                started, cpu = time.perf_counter(), time.thread_time()
                tokens = engines[name](prompt)
                rates[name].append(tokens / (time.perf_counter() - started))
                client_cpu[name][0] += time.thread_time() - cpu
                client_cpu[name][1] += tokens
            order = order[1:] + order[:1]
    model.close()
    median = {name: statistics.median(values) for name, values in rates.items()}
    result = {
        "model": Path(path).name,
        "threads": args.threads,
        "tokens_per_answer": args.tokens,
        "prompts": len(PROMPTS),
        "rounds": args.rounds,
        "tokens_per_s": {name: round(v, 1) for name, v in median.items()},
        "tokens_per_s_quartiles": {
            name: [round(q, 1) for q in statistics.quantiles(values, n=4)] for name, values in rates.items()
        },
        # The caller's own CPU per token: the client side's cost, whatever else loads the
        # machine (the server decodes on its own threads; llama-cpp-python on this one).
        "caller_cpu_ms_per_token": {
            name: round(1000 * cpu / tokens, 3) for name, (cpu, tokens) in client_cpu.items() if name != "llama.cpp"
        },
        "ours_vs_server": round(median["ours"] / median["server"], 3),
        "ours_vs_llama_cpp": round(median["ours"] / median["llama.cpp"], 3),
    }
    if args.json:
        print(json.dumps(result, indent=2))
        return
    print(
        f"{result['model']}, {args.threads} threads, {args.rounds} rounds x {len(PROMPTS)} prompts x "
        f"{args.tokens} tokens; tokens/s per answer, median and quartiles"
    )
    for name, value in median.items():
        print(f"  {name:10s} {value:7.1f} tokens/s   quartiles {result['tokens_per_s_quartiles'][name]}")
    print(
        "caller's CPU per token: "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in result["caller_cpu_ms_per_token"].items())
    )
    print(f"ours / server    = {result['ours_vs_server']:.3f}  (goal >= 0.95)")
    print(f"ours / llama.cpp = {result['ours_vs_llama_cpp']:.3f}  (goal >= 0.95)")


if __name__ == "__main__":
    main()
