"""`curator chat` and `curator serve` (registered by cli/main.py through COMMANDS)."""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

import click

from curator import chat as chat_models

DEFAULT = chat_models.Sampling()
GGUF = click.Path(exists=True, dir_okay=False, path_type=Path)


@click.command()
@click.argument("model", required=False, type=GGUF)
@click.option("--lora", type=GGUF, help="A LoRA adapter GGUF applied to MODEL at run time.")
@click.option(
    "--compare",
    "other",
    type=GGUF,
    help="A second model that answers every prompt too (e.g. the base beside the tuned one).",
)
@click.option("--system", help="System prompt.")
@click.option("--prompt", help="Answer this one prompt and exit.")
@click.option(
    "--temperature",
    type=float,
    default=DEFAULT.temperature,
    show_default=True,
    help="0 gives the same answer every time.",
)
@click.option("--top-k", type=int, default=DEFAULT.top_k, show_default=True)
@click.option("--top-p", type=float, default=DEFAULT.top_p, show_default=True)
@click.option("--repeat-penalty", type=float, default=DEFAULT.repeat_penalty, show_default=True)
@click.option("--max-tokens", type=int, default=DEFAULT.max_tokens, show_default=True, help="Longest answer.")
@click.option(
    "--context",
    type=int,
    default=2048,
    show_default=True,
    help="Tokens the conversation may hold; the oldest turns are dropped beyond it.",
)
def chat(model, lora, other, system, prompt, temperature, top_k, top_p, repeat_penalty, max_tokens, context):
    """Chat with a GGUF model (default: the bundled SmolLM2-135M-Instruct), answers streamed."""
    sampling = chat_models.Sampling(
        temperature=temperature, top_p=top_p, top_k=top_k, repeat_penalty=repeat_penalty, max_tokens=max_tokens
    )
    models = [chat_models.ChatModel(model, lora, context=context)]
    try:
        if other:
            models.append(chat_models.ChatModel(other, context=context))
        conversations = [chat_models.Conversation(system) for _ in models]
        if prompt is not None:
            _answer_all(models, conversations, prompt, sampling)
        else:
            _repl(models, conversations, sampling)
    finally:
        for chat_model in models:
            chat_model.close()


def _repl(models, conversations, sampling) -> None:
    if sys.stdin.isatty():
        import readline  # noqa: F401  (line editing and history for input())
    names = " and ".join(m.label for m in models)
    click.echo(
        f"chatting with {names}. /reset forgets the conversation, /exit or Ctrl-D quits, Ctrl-C stops an answer.",
        err=True,
    )
    while True:
        try:
            prompt = input("> " if sys.stdin.isatty() else "").strip()
        except (EOFError, KeyboardInterrupt):
            click.echo(err=True)
            return
        if prompt in ("/exit", "/quit"):
            return
        if prompt == "/reset":
            for conversation in conversations:
                conversation.turns.clear()
            click.echo("(conversation forgotten)", err=True)
        elif prompt:
            try:
                _answer_all(models, conversations, prompt, sampling)
            except KeyboardInterrupt:  # the stopped answer is not remembered
                click.echo("\n(stopped)", err=True)


def _answer_all(models, conversations, prompt, sampling) -> None:
    """Each model answers in turn, streamed; with two, each answer under its model's name."""
    for chat_model, conversation in zip(models, conversations):
        if len(models) > 1:
            click.echo(click.style(f"[{chat_model.label}]", bold=True))
        reply = chat_model.reply(conversation, prompt, sampling)
        try:
            for piece in reply:
                click.echo(piece, nl=False)
        finally:
            reply.close()
        click.echo()
        conversation.turns.append((prompt, reply.text))
        cut = ", cut at --max-tokens" if reply.finish_reason == "length" else ""
        click.echo(click.style(f"({reply.tokens} tokens, {reply.tokens_per_s:.1f} tokens/s{cut})", dim=True), err=True)


@click.command()
@click.argument("model", required=False, type=GGUF)
@click.option("--lora", type=GGUF, help="A LoRA adapter GGUF applied to MODEL at run time.")
@click.option("--port", type=int, default=8080, show_default=True, help="0: any free port.")
@click.option(
    "--host",
    default="127.0.0.1",
    show_default=True,
    help="Address to bind; 0.0.0.0 lets anyone on the network use the model.",
)
@click.option("--parallel", type=int, default=4, show_default=True, help="Requests decoded at once.")
@click.option("--context", type=int, default=2048, show_default=True, help="Tokens per request (prompt + answer).")
def serve(model, lora, port, host, parallel, context):
    """Serve a GGUF model (default: the bundled one) on an OpenAI-compatible API until Ctrl-C."""
    server = chat_models.serve(model, lora, port=port, host=host, n_parallel=parallel, context=context)
    if host not in ("127.0.0.1", "localhost", "::1"):
        click.echo(f"warning: bound to {host}: anyone who can reach it can use the model, with no key", err=True)
    click.echo(
        f"serving {chat_models.label(model, lora)} as model {server.model!r} at {server.base_url} "
        "(/models, /chat/completions); Ctrl-C stops it"
    )
    sys.stdout.flush()  # for whoever reads the URL from a pipe while the server runs
    stopping = threading.Event()
    for signum in (signal.SIGINT, signal.SIGTERM):
        signal.signal(signum, lambda *_: stopping.set())
    while not stopping.wait(0.5):  # a timeout keeps the main thread where signal handlers run
        pass
    server.stop()
    click.echo("stopped", err=True)


COMMANDS = [chat, serve]
