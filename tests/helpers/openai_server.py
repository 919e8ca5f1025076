"""A local OpenAI-compatible chat endpoint (``POST /v1/chat/completions``) for tests, scripted reply by reply.

``replies`` is a function of the parsed request body returning a :class:`Scripted` (a reply text, an HTTP
error status with ``Retry-After``, or a delay before answering), so a test can answer well, malformed or
slowly. Every request body is kept in :attr:`OpenAIServer.requests`.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler

from tests.helpers.local_server import LocalServer


@dataclass
class Scripted:
    content: str = ""
    status: int = 200
    retry_after: float | None = None
    delay_s: float = 0.0


class OpenAIServer(LocalServer):
    def __init__(self, replies: Callable[[dict], Scripted]) -> None:
        self.replies = replies
        self.requests: list[dict] = []
        self._lock = threading.Lock()
        super().__init__(_handler(self))

    @property
    def api_base(self) -> str:
        return f"http://127.0.0.1:{self.port}/v1"


def _handler(server: OpenAIServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args) -> None:
            pass

        def _reply(self, status: int, body: dict, headers: dict | None = None) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, str(v))
            self.end_headers()
            try:
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):  # the client timed out and left
                pass

        def do_POST(self) -> None:
            body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
            if self.path.rstrip("/") != "/v1/chat/completions":
                return self._reply(404, {"error": {"message": f"no route {self.path}"}})
            with server._lock:
                server.requests.append(body)
            scripted = server.replies(body)
            if scripted.delay_s:
                time.sleep(scripted.delay_s)
            if scripted.status != 200:
                headers = {"Retry-After": scripted.retry_after} if scripted.retry_after is not None else {}
                return self._reply(scripted.status, {"error": {"message": f"scripted {scripted.status}"}}, headers)
            self._reply(200, {
                "id": "chatcmpl-test", "object": "chat.completion", "created": int(time.time()),
                "model": body.get("model", ""),
                "choices": [{"index": 0, "finish_reason": "stop",
                             "message": {"role": "assistant", "content": scripted.content}}],
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
            })  # fmt: skip
            return None

    return Handler
