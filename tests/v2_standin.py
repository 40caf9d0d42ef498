"""A stand-in for Triton's KServe HTTP endpoints that a chat uses (stdlib only): health, model readiness
and `POST /v2/models/NAME/generate_stream`, answering the way Triton's HTTP frontend does
(triton-inference-server/server `src/http_server.cc`: `{"error": "..."}` with 400 for a model that is
not ready; a stream is Server-Sent Events, one `data: {...}` per response, and a failure after the
headers is an `{"error": ...}` event). It records each generate body, so a test can read the prompt sent.

Models behave as "ok" (one event per word of `REPLY`) or "fail" (one word, then an error event)."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Literal

from tests.openai_standin import serve_in_thread

Behaviour = Literal["ok", "fail"]
REPLY = ("Four", " it", " is.")


@dataclass
class V2StandIn:
    models: dict[str, Behaviour]  # ready models
    bodies: list[dict[str, Any]] = field(default_factory=list)  # each generate_stream request body
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    @property
    def prompts(self) -> list[str]:
        return [body["text_input"] for body in self.bodies]

    def start(self) -> V2StandIn:
        self.server = serve_in_thread(self)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _model(self, path: str, suffix: str) -> str | None:
        name = path.removeprefix("/v2/models/").removesuffix(suffix)
        return name if path.startswith("/v2/models/") and path.endswith(suffix) else None

    def handle_get(self, h: BaseHTTPRequestHandler) -> None:
        if h.path in ("/v2/health/live", "/v2/health/ready") or (
            (name := self._model(h.path, "/ready")) is not None and name in self.models
        ):
            _send(h, 200, b"")
        else:
            _send(h, 400, json.dumps({"error": "Request for unknown model"}).encode())

    def handle_post(self, h: BaseHTTPRequestHandler) -> None:
        body = json.loads(h.rfile.read(int(h.headers.get("Content-Length") or 0)))
        name = self._model(h.path, "/generate_stream")
        if name not in self.models:
            _send(h, 400, json.dumps({"error": f"Request for unknown model: '{name}' is not found"}).encode())
            return
        if not isinstance(body.get("text_input"), str):
            _send(h, 400, json.dumps({"error": "missing text_input"}).encode())
            return
        self.bodies.append(body)
        h.send_response(200)
        h.send_header("Content-Type", "text/event-stream; charset=utf-8")
        h.send_header("Connection", "close")
        h.end_headers()
        pieces = REPLY if self.models[name] == "ok" else REPLY[:1]
        for piece in pieces:
            h.wfile.write(f"data: {json.dumps({'model_name': name, 'text_output': piece})}\n\n".encode())
        if self.models[name] == "fail":
            h.wfile.write(b'data: {"error": "engine died"}\n\n')
        h.close_connection = True


def _send(h: BaseHTTPRequestHandler, status: int, body: bytes) -> None:
    h.send_response(status)
    h.send_header("Content-Type", "application/json")
    h.send_header("Content-Length", str(len(body)))
    h.end_headers()
    h.wfile.write(body)
