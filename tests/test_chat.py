"""`curator chat`, `curator serve` and the app's Chat page on the bundled SmolLM2 GGUF.

The LoRA adapter is a real llama.cpp LoRA GGUF written here with small random weights: enough to
prove the adapter is loaded and applied at run time. Trained adapters come from `curator
quantize --adapter-only` and are tested there.
"""

from __future__ import annotations

import re
import select
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import openai
import psutil
import pytest
from streamlit.testing.v1 import AppTest

from cli.main import cli
from curator import chat, llm_server
from tests.conftest import Curator

APP = str(Path(__file__).resolve().parents[1] / "app.py")
PROMPT = "What is the capital of France?"
GREEDY = ("--temperature", "0", "--max-tokens", "32")


@pytest.fixture(scope="module")
def base() -> Path:
    return llm_server.bundled_model()


@pytest.fixture(scope="module")
def adapter(tmp_path_factory) -> Path:
    """A rank-4 LoRA on every layer's query projection, in llama.cpp's adapter layout."""
    path = tmp_path_factory.mktemp("adapter") / "tiny-lora.gguf"
    writer = gguf.GGUFWriter(str(path), arch="llama")
    writer.add_type("adapter")
    writer.add_string("adapter.type", "lora")
    writer.add_float32("adapter.lora.alpha", 4.0)
    rng = np.random.default_rng(0)
    for layer in range(30):
        # lora_a is (rank, in), lora_b (out, rank), as PEFT stores them; SmolLM2's hidden size is 576.
        writer.add_tensor(
            f"blk.{layer}.attn_q.weight.lora_a", (rng.standard_normal((4, 576)) * 0.05).astype(np.float32)
        )
        writer.add_tensor(
            f"blk.{layer}.attn_q.weight.lora_b", (rng.standard_normal((576, 4)) * 0.05).astype(np.float32)
        )
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return path


@pytest.fixture(scope="module")
def greedy_answer(tmp_path_factory) -> str:
    """The bundled model's one-shot answer to PROMPT at temperature 0, through the CLI."""
    result = Curator(tmp_path_factory.mktemp("db") / "unused.duckdb")("chat", "--prompt", PROMPT, *GREEDY)
    assert re.fullmatch(r"\(\d+ tokens, [\d.]+ tokens/s(, cut at --max-tokens)?\)\n", result.stderr)
    return result.stdout.removesuffix("\n")


@pytest.mark.slow
def test_one_shot_answer_is_the_same_twice_at_temperature_0(curator, greedy_answer):
    assert greedy_answer.strip()
    assert curator("chat", "--prompt", PROMPT, *GREEDY).stdout == greedy_answer + "\n"


@pytest.mark.slow
def test_compare_labels_both_answers_and_the_adapter_changes_one(curator, base, adapter, greedy_answer):
    result = curator("chat", base, "--lora", adapter, "--compare", base, "--prompt", PROMPT, *GREEDY)
    tuned_label, base_label = f"[{base.name} + {adapter.name}]\n", f"[{base.name}]\n"
    assert result.stdout.startswith(tuned_label) and result.stdout.count(base_label) == 1
    tuned, plain = result.stdout.removeprefix(tuned_label).split(base_label)
    assert plain == greedy_answer + "\n"  # the second model answers as it does alone
    assert tuned.strip() and tuned != plain  # the adapter is applied


@pytest.mark.slow
def test_interactive_chat_remembers_the_conversation_until_reset(curator, greedy_answer):
    # Asked after another turn, the prompt gets another answer (the turn is in the context);
    # after /reset, the one-shot answer again.
    result = curator.runner.invoke(
        cli,
        ["chat", *GREEDY],
        catch_exceptions=False,
        input=f"My name is Ada and I live in Rome.\n{PROMPT}\n/reset\n{PROMPT}\n",
    )
    assert result.exit_code == 0, result.output
    assert result.stdout.endswith(greedy_answer + "\n") and result.stdout.count(greedy_answer) == 1
    assert "(conversation forgotten)" in result.stderr and result.stderr.count(" tokens/s") == 3


def test_old_turns_are_dropped_when_the_conversation_outgrows_the_context():
    model = chat.ChatModel(context=256)
    try:
        turns = [(f"Tell me about topic {i}. " + "word " * 50, "Here it is. " + "more " * 50) for i in range(3)]
        conversation = chat.Conversation("Be brief.", list(turns))
        assert [m["role"] for m in conversation.messages(PROMPT)] == ["system"] + ["user", "assistant"] * 3 + ["user"]
        reply = model.reply(conversation, PROMPT, chat.Sampling(temperature=0, max_tokens=8))
        assert "".join(reply).strip() and reply.tokens > 0
        assert conversation.turns == turns[-1:]  # the oldest two went, the newest stayed
        with pytest.raises(ValueError, match="does not fit the model's context of 256 tokens"):
            model.reply(chat.Conversation(), "word " * 400)
    finally:
        model.close()


def test_unloadable_files_and_a_busy_port_fail_with_one_clear_line(curator, base, tmp_path):
    not_gguf = tmp_path / "notes.gguf"
    not_gguf.write_text("not a model")
    for args in ([not_gguf], [base, "--lora", not_gguf]):
        result = curator("chat", *args, "--prompt", "hi", ok=False)
        assert result.exit_code == 1 and f"llama.cpp could not load {args[0]}" in result.output
        assert "Traceback" not in result.output
    with socket.create_server(("127.0.0.1", 0)) as busy:
        port = busy.getsockname()[1]
        result = curator("serve", "--port", port, ok=False)
    assert result.exit_code == 1 and f"cannot listen on 127.0.0.1:{port}: in use" in result.output


def _first_line(process: subprocess.Popen, timeout: float) -> str:
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    return process.stdout.readline() if ready else ""


@pytest.mark.slow
def test_serve_answers_the_openai_client_on_loopback_and_stops_on_sigterm(tmp_path, greedy_answer):
    log = tmp_path / "serve.log"
    with open(log, "wb") as err:
        process = subprocess.Popen(
            [
                str(Path(sys.executable).with_name("curator")),
                "serve",
                "--port",
                "0",
                "--parallel",
                "2",
                "--context",
                "1024",
            ],
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
    try:
        line = _first_line(process, timeout=120)
        url = re.search(r" at (http://\S+/v1) ", line)
        assert url, line + log.read_text()
        assert url.group(1).startswith("http://127.0.0.1:")
        listening = [c.laddr for c in psutil.Process(process.pid).net_connections() if c.status == psutil.CONN_LISTEN]
        assert listening and {a.ip for a in listening} == {"127.0.0.1"}

        client = openai.OpenAI(base_url=url.group(1), api_key="unused", max_retries=0)
        assert [m.id for m in client.models.list().data] == [llm_server.BUNDLED_MODEL_NAME]
        request = {
            "model": llm_server.BUNDLED_MODEL_NAME,
            "messages": [{"role": "user", "content": PROMPT}],
            **chat.Sampling(temperature=0, max_tokens=32).request(),
        }
        whole = client.chat.completions.create(**request).choices[0].message.content
        pieces = [
            chunk.choices[0].delta.content
            for chunk in client.chat.completions.create(**request, stream=True)
            if chunk.choices and chunk.choices[0].delta.content
        ]
        assert len(pieces) > 1 and "".join(pieces) == whole == greedy_answer  # the same model, template, sampling
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    assert code == 0 and "stopped" in log.read_text()


def test_gguf_files_are_found_by_kind(base, adapter, tmp_path):
    (tmp_path / "runs" / "r1").mkdir(parents=True)
    (tmp_path / ".hidden").mkdir()
    (tmp_path / "runs" / "r1" / "model.gguf").symlink_to(base)
    shutil.copy(adapter, tmp_path / "runs" / "r1" / "adapter.gguf")
    shutil.copy(adapter, tmp_path / ".hidden" / "skipped.gguf")
    (tmp_path / "notes.gguf").write_text("not a GGUF file")
    assert chat.gguf_type(base) == "model" and chat.gguf_type(adapter) == "adapter"
    assert chat.gguf_type(tmp_path / "notes.gguf") is None
    found = chat.find_gguf([tmp_path, tmp_path / "runs"])  # the same file twice is listed once
    assert found == {"model": [base.resolve()], "adapter": [(tmp_path / "runs" / "r1" / "adapter.gguf").resolve()]}


@pytest.mark.slow
def test_chat_page_shows_the_tuned_model_beside_the_base(base, adapter, tmp_path, monkeypatch, greedy_answer):
    (tmp_path / "runs").mkdir()
    tuned = tmp_path / "runs" / "tuned.gguf"
    shutil.copy(base, tuned)  # a model file of its own, as `curator quantize` writes
    shutil.copy(adapter, tmp_path / "runs" / "tiny-lora.gguf")
    monkeypatch.setenv("CURATOR_DB", str(tmp_path / "curator.duckdb"))  # models are looked for beside it
    app = AppTest.from_file(APP, default_timeout=120).run()
    app.switch_page("ui/chat_page.py").run()
    assert not app.exception
    # By default the newest model found is on the left, the bundled base beside it.
    assert app.selectbox(key="a-model").value == str(tuned.resolve()) and app.toggle[0].value
    assert app.selectbox(key="b-model").value == str(base.resolve())
    app.slider[0].set_value(0.0)  # temperature
    app.slider[4].set_value(32).run()  # max tokens
    app.chat_input[0].set_value(PROMPT).run()
    assert not app.exception and not app.error
    assert [h.value for h in app.subheader] == ["tuned.gguf", base.name]
    messages = [m.markdown[0].value for m in app.chat_message]
    assert messages == [PROMPT, greedy_answer, PROMPT, greedy_answer]  # the same weights answer alike

    app.selectbox(key="a-lora").set_value(str((tmp_path / "runs" / "tiny-lora.gguf").resolve())).run()
    assert not app.chat_message  # another model: a new conversation
    app.chat_input[0].set_value(PROMPT).run()
    tuned_answer, base_answer = (m.markdown[0].value for m in app.chat_message[1::2])
    assert app.subheader[0].value == "tuned.gguf + tiny-lora.gguf"
    assert base_answer == greedy_answer and tuned_answer not in ("", greedy_answer)
