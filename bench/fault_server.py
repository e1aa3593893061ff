"""A fault-injecting OpenAI-compatible chat server on 127.0.0.1, for distill's and the judge's tests.

It answers `POST /v1/chat/completions` deterministically ("Answer to: PROMPT", or what the
`answer` hook makes of the prompt; usage counted in words) and misbehaves on cue:
`plan[prompt]` is a list of faults, one consumed per request for that prompt (the prompt is
the last user message); when the list is empty it answers.

Faults:
  "429"        429 with Retry-After: `retry_after` seconds
  "500"        500 with an OpenAI-style error body
  "slow"       answers after `slow_seconds` (beyond the client's timeout)
  "malformed"  200 with a truncated JSON body
  "drop"       closes the connection without answering
  "context"    400 context_length_exceeded unless max_tokens <= CONTEXT_FIT
  "bad"        400 invalid request (not retryable)
  "auth"       401 whose message quotes the key it was sent, as OpenAI's does (masked there)
  "length"     a normal answer with finish_reason "length"

Every request is logged (time, prompt, max_tokens, Authorization header) in `requests`.
"""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

CONTEXT_LIMIT, CONTEXT_PROMPT = 150, 50
CONTEXT_FIT = CONTEXT_LIMIT - CONTEXT_PROMPT


class FaultServer:
    def __init__(
        self,
        plan: dict[str, list[str]] | None = None,
        *,
        retry_after: float = 1,
        slow_seconds: float = 2.0,
        latency: float = 0.0,
        model: str = "fault-model",
        answer: Callable[[str], str] | None = None,
    ):
        self.plan = {prompt: list(faults) for prompt, faults in (plan or {}).items()}
        self.answer = answer or answer_for
        self.retry_after, self.slow_seconds, self.latency, self.model = retry_after, slow_seconds, latency, model
        self.requests: list[tuple[float, str, int | None, str | None]] = []
        self.answered = 0
        self.lock = threading.Lock()
        self.httpd = _QuietServer(("127.0.0.1", 0), _handler(self))
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="fault-server", daemon=True)

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_port}/v1"

    def start(self) -> FaultServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()

    def __enter__(self) -> FaultServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def reset(self) -> None:
        with self.lock:
            self.requests.clear()
            self.answered = 0

    def counts(self) -> Counter:
        """Requests per prompt."""
        with self.lock:
            return Counter(prompt for _, prompt, _, _ in self.requests)

    def times(self, prompt: str) -> list[float]:
        with self.lock:
            return [t for t, p, _, _ in self.requests if p == prompt]

    def max_tokens(self, prompt: str) -> list[int | None]:
        with self.lock:
            return [m for _, p, m, _ in self.requests if p == prompt]

    def kill_9_after(self, answers: int, command: list[str], output: Path, env: dict | None = None) -> None:
        """Run `command` (a child process writing to `output`) and kill -9 it once this server
        has answered `answers` requests: mid-run, with requests in flight."""
        with output.open("wb") as sink:  # the child holds its own copy of the descriptor
            child = subprocess.Popen(command, stdout=sink, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 120
        while child.poll() is None and self.answered < answers and time.monotonic() < deadline:
            time.sleep(0.01)
        assert child.poll() is None, "the run finished before it could be killed"
        child.send_signal(signal.SIGKILL)
        child.wait()

    def next_fault(self, prompt: str, max_tokens: int | None, auth: str | None) -> str | None:
        with self.lock:
            self.requests.append((time.monotonic(), prompt, max_tokens, auth))
            faults = self.plan.get(prompt)
            return faults.pop(0) if faults else None


class _QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        pass  # dropped connections and timed-out clients are the point here, not news


def answer_for(prompt: str) -> str:
    return f"Answer to: {prompt}"


def usage_for(messages: list[dict], answer: str) -> tuple[int, int]:
    """(prompt_tokens, completion_tokens) as this server reports them: words."""
    return sum(len(str(m.get("content", "")).split()) for m in messages), len(answer.split())


def _handler(server: FaultServer):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        # Headers and body go out in two writes: with Nagle's algorithm on, the body waits for
        # the client's delayed ACK (~40 ms a request), and an "instant" server is not.
        disable_nagle_algorithm = True

        def log_message(self, *args) -> None:
            pass

        def _send(self, status: int, body: bytes, headers: dict | None = None) -> None:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            for name, value in (headers or {}).items():
                self.send_header(name, value)
            self.end_headers()
            try:
                self.wfile.write(body)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up (timeout): nothing to do

        def _error(
            self,
            status: int,
            message: str,
            code: str | None = None,
            kind: str = "invalid_request_error",
            headers: dict | None = None,
        ) -> None:
            body = {"error": {"message": message, "type": kind, "param": None, "code": code}}
            self._send(status, json.dumps(body).encode(), headers)

        def do_POST(self) -> None:
            request = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            messages = request["messages"]
            prompt = next(m["content"] for m in reversed(messages) if m["role"] == "user")
            max_tokens = request.get("max_tokens")
            auth = self.headers.get("Authorization")
            fault = server.next_fault(prompt, max_tokens, auth)
            if fault == "429":
                return self._error(
                    429,
                    "Rate limit reached, slow down",
                    "rate_limit_exceeded",
                    "requests",
                    {"Retry-After": f"{server.retry_after:g}"},
                )
            if fault == "500":
                return self._error(500, "The server had an error while processing your request.", None, "server_error")
            if fault == "malformed":
                return self._send(200, b'{"id": "x", "choices": [{"index": 0, "message": {"role": "assi')
            if fault == "drop":
                self.close_connection = True
                self.connection.shutdown(socket.SHUT_RDWR)
                return None
            if fault == "context" and (max_tokens or 0) > CONTEXT_FIT:
                return self._error(
                    400,
                    (
                        f"This model's maximum context length is {CONTEXT_LIMIT} tokens. However, you requested "
                        f"{CONTEXT_PROMPT + max_tokens} tokens ({CONTEXT_PROMPT} in the messages, {max_tokens} in "
                        "the completion). Please reduce the length of the messages or completion."
                    ),
                    "context_length_exceeded",
                )
            if fault == "bad":
                return self._error(400, "Invalid value for 'messages'.", "invalid_value")
            if fault == "auth":
                key = (auth or "").removeprefix("Bearer ")
                return self._error(
                    401,
                    f"Incorrect API key provided: {key}. You can find your API key at "
                    "https://platform.openai.com/account/api-keys.",
                    "invalid_api_key",
                )
            time.sleep(server.slow_seconds if fault == "slow" else server.latency)
            answer = server.answer(prompt)
            prompt_tokens, completion_tokens = usage_for(messages, answer)
            body = {
                "id": "chatcmpl-fault",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": server.model,
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": answer},
                        "finish_reason": "length" if fault == "length" else "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": prompt_tokens,
                    "completion_tokens": completion_tokens,
                    "total_tokens": prompt_tokens + completion_tokens,
                },
            }
            self._send(200, json.dumps(body).encode())
            with server.lock:
                server.answered += 1

    return Handler
