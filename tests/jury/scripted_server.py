"""A local chat-completions server whose "models" answer by script.

It stands in for `vllm serve` on a GPU host (the edge that leaves the machine); the
openai client and everything behind it are real. Each judge's model name picks a
script; the script sees the judged conversation and returns the model's text.
"""

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Script = Callable[[str], str]


def verdict(label: str, *categories: str) -> str:
    return json.dumps({"verdict": label, "categories": list(categories)})


def keyword_judge(text: str) -> str:
    """Unsafe (Violence) when the conversation mentions an attack, else safe."""
    return verdict("unsafe", "Violence") if "attack" in text else verdict("safe")


def cautious_judge(text: str) -> str:
    """Unsafe for attacks (Violence, Threat) and for anything about locks."""
    if "attack" in text:
        return verdict("unsafe", "Violence", "Threat")
    if "lock" in text:
        return verdict("unsafe", "Criminal Planning/Confessions")
    return verdict("safe")


def rambling_judge(text: str) -> str:
    """Never answers in the contract's form: every vote is invalid."""
    return "Well, it depends on the context; I would rather not say."


def slow_keyword_judge(text: str) -> str:
    """The keyword judge, two seconds per answer: a chunk long enough to kill."""
    time.sleep(2.0)
    return keyword_judge(text)


SCRIPTS: dict[str, Script] = {
    "keyword": keyword_judge,
    "slow-keyword": slow_keyword_judge,
    "cautious": cautious_judge,
    "rambling": rambling_judge,
}


@contextmanager
def scripted_server() -> Iterator[tuple[str, list[dict[str, Any]]]]:
    """Serve the scripts; yields (base URL ending in /v1, the requests received)."""
    received: list[dict[str, Any]] = []
    lock = threading.Lock()

    class Handler(BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            with lock:
                received.append(body)
            prompt = body["messages"][-1]["content"]
            # The scripts read the conversation only (the taxonomy's guidance would
            # trip their keywords).
            start = prompt.rfind("<BEGIN CONVERSATION>")
            end = prompt.rfind("<END CONVERSATION>")
            text = SCRIPTS[body["model"]](prompt[start:end] if start >= 0 else prompt)
            payload = {
                "id": "chatcmpl-test",
                "object": "chat.completion",
                "created": 0,
                "model": body["model"],
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": text},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": 50,
                    "completion_tokens": 12,
                    "total_tokens": 62,
                },
            }
            data = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/v1", received
    finally:
        httpd.shutdown()
        httpd.server_close()
