"""The openai backend against a local HTTP server speaking the chat-completions API.

The server is the edge that leaves the machine in production (``vllm serve`` on a
GPU host), so it is the one thing replaced here; the openai client is real.
"""

import json
import logging
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field, replace
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from jury.backends import (
    BackendError,
    BackendUnavailable,
    JudgeConfig,
    clear_backends,
    get_backend,
)

SCHEMA = {
    "type": "object",
    "properties": {"verdict": {"type": "string", "enum": ["safe", "unsafe"]}},
    "required": ["verdict"],
}


@dataclass
class ChatServer:
    """Answers each chat completion with the user's message, after ``delay_s``.

    A message ``status 400`` (or any code) is answered with that HTTP error. With
    ``gather`` set, a request waits (up to 2 s) until that many are in flight, so a
    client allowed that many at once reaches it however busy the machine is.
    """

    delay_s: float = 0.0
    gather: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    in_flight: int = 0
    max_in_flight: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)
    httpd: ThreadingHTTPServer | None = None

    def start(self, port: int = 0) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

            def do_POST(self) -> None:
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with server.lock:
                    server.requests.append(body)
                    server.headers.append(
                        {k.lower(): v for k, v in self.headers.items()}
                    )
                    server.in_flight += 1
                    server.max_in_flight = max(server.max_in_flight, server.in_flight)
                deadline = time.monotonic() + 2
                while server.max_in_flight < server.gather:
                    if time.monotonic() > deadline:
                        break
                    time.sleep(0.005)
                try:
                    time.sleep(server.delay_s)
                    content = body["messages"][-1]["content"]
                    if self.path != "/v1/chat/completions":
                        self.reply(404, {"error": {"message": "no such path"}})
                    elif content.startswith("status "):
                        code = int(content.split()[1])
                        self.reply(code, {"error": {"message": f"refused: {code}"}})
                    else:
                        self.reply(200, completion(content))
                finally:
                    with server.lock:
                        server.in_flight -= 1

            def reply(self, code: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.httpd.daemon_threads = True
        threading.Thread(
            target=self.httpd.serve_forever, args=(0.05,), daemon=True
        ).start()

    @property
    def url(self) -> str:
        assert self.httpd is not None
        return f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()

    def contents(self) -> list[str]:
        return [r["messages"][-1]["content"] for r in self.requests]


def completion(content: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion",
        "created": 0,
        "model": "judge-model",
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": f"echo: {content}"},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": len(content),
            "completion_tokens": 7,
            "total_tokens": len(content) + 7,
        },
    }


def user(content: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": content}]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(autouse=True)
def _fresh_backends() -> Iterator[None]:
    clear_backends()
    yield
    clear_backends()


@pytest.fixture
def server() -> Iterator[ChatServer]:
    chat = ChatServer()
    chat.start()
    yield chat
    chat.stop()


def judge(url: str, **extra: Any) -> JudgeConfig:
    return JudgeConfig(
        name="nemo",
        backend="openai",
        model="mistralai/Mistral-Nemo-Instruct-2407",
        endpoint=url,
        temperature=0.0,
        max_tokens=128,
        extra={"backoff_s": 0.01, **extra},
    )


def test_the_request_carries_the_model_sampling_and_structured_output(
    server: ChatServer,
) -> None:
    backend = get_backend(judge(server.url))

    (generation,) = backend.generate([user("is this safe?")], schema=SCHEMA)

    (body,) = server.requests
    assert body["model"] == "mistralai/Mistral-Nemo-Instruct-2407"
    assert body["messages"] == [{"role": "user", "content": "is this safe?"}]
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 128
    assert body["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "jury_vote", "schema": SCHEMA},
    }
    assert generation.text == "echo: is this safe?"
    assert generation.prompt_tokens == len("is this safe?")
    assert generation.completion_tokens == 7
    assert generation.error == ""


def test_without_a_schema_no_response_format_is_sent(server: ChatServer) -> None:
    get_backend(judge(server.url)).generate([user("hello")], schema=None)

    (body,) = server.requests
    assert "response_format" not in body


def test_requests_run_concurrently_up_to_the_bound_and_keep_their_order(
    server: ChatServer,
) -> None:
    # every request waits until four are in flight: one at a time would stall at
    # one, and an unbounded client would go past four
    server.delay_s = 0.2
    server.gather = 4
    backend = get_backend(judge(server.url, max_in_flight=4))
    messages = [f"item {i}" for i in range(8)]

    generations = backend.generate([user(m) for m in messages], schema=SCHEMA)

    assert [g.text for g in generations] == [f"echo: {m}" for m in messages]
    assert server.max_in_flight == 4
    assert all(g.latency_ms >= 200 for g in generations)


def test_a_refused_connection_is_retried_until_the_server_answers(
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()
    late = ChatServer()

    class StartOnFirstRetry(logging.Handler):
        # The server comes up when the backend reports its first failure, so the
        # first try is refused for certain and the retry finds it listening.
        def emit(self, record: logging.LogRecord) -> None:
            if late.httpd is None:
                late.start(port)

    handler = StartOnFirstRetry(level=logging.WARNING)
    logging.getLogger("jury.backends.openai_backend").addHandler(handler)
    try:
        backend = get_backend(judge(f"http://127.0.0.1:{port}/v1", retries=3))
        with caplog.at_level(logging.WARNING, "jury.backends.openai_backend"):
            (generation,) = backend.generate([user("anyone there?")], schema=None)
    finally:
        logging.getLogger("jury.backends.openai_backend").removeHandler(handler)
        late.stop()

    assert generation.text == "echo: anyone there?"
    assert generation.error == ""
    assert late.contents() == ["anyone there?"]
    (retry,) = caplog.records
    assert "APIConnectionError" in retry.getMessage()
    assert "retry 1 of 3" in retry.getMessage()


def test_an_endpoint_that_stays_down_raises_after_the_retries() -> None:
    backend = get_backend(judge(f"http://127.0.0.1:{free_port()}/v1", retries=2))

    with pytest.raises(BackendUnavailable, match="after 3 tries"):
        backend.generate([user("hello")], schema=None)


def test_an_http_error_is_not_retried_and_becomes_that_items_error(
    server: ChatServer,
) -> None:
    backend = get_backend(judge(server.url, retries=3))

    generations = backend.generate(
        [user("fine"), user("status 400"), user("status 500"), user("also fine")],
        schema=SCHEMA,
    )

    assert sorted(server.contents()) == [
        "also fine",
        "fine",
        "status 400",
        "status 500",
    ]  # one request each: nothing was retried
    assert [g.text for g in generations] == ["echo: fine", "", "", "echo: also fine"]
    assert generations[1].error.startswith("HTTP 400: ")
    assert "refused: 400" in generations[1].error
    assert generations[2].error.startswith("HTTP 500: ")
    assert generations[1].prompt_tokens is None
    assert generations[1].completion_tokens is None
    assert generations[0].error == generations[3].error == ""


def test_the_api_key_comes_from_the_named_environment_variable(
    server: ChatServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("JURY_NEMO_API_KEY", "sk-from-the-env")
    keyed = replace(judge(server.url), api_key_env="JURY_NEMO_API_KEY")

    get_backend(keyed).generate([user("hello")], schema=None)
    get_backend(judge(server.url)).generate([user("hello")], schema=None)

    assert [h["authorization"] for h in server.headers] == [
        "Bearer sk-from-the-env",
        "Bearer EMPTY",
    ]


def test_a_judge_without_an_endpoint_is_refused() -> None:
    with pytest.raises(BackendError, match="needs an endpoint"):
        get_backend(judge(""))
