"""A stand-in for Triton's OpenAI-compatible frontend (stdlib only), answering with its real wire format.

Shapes are copied from triton-inference-server/server r26.08 `python/openai/openai_frontend`:
- `/v1/models`: `ListModelsResponse` (`frontend/fastapi/routers/models.py`, `schemas/openai.py`);
- `/v1/chat/completions` streaming: `TritonLLMEngine._streaming_chat_iterator`, each chunk
  `CreateChatCompletionStreamResponse.model_dump_json(exclude_unset=True)` (compact JSON, fields in
  declaration order, only the ones the engine set), a role-only first chunk, one chunk per backend
  response, an optional usage chunk with `choices: []`, then `data: [DONE]`;
- non-streaming: `CreateChatCompletionResponse` serialized in full by FastAPI;
- errors: `HTTPException` -> `{"detail": "..."}`; body validation -> 422 with FastAPI's detail list.
It refuses what the frontend refuses (unknown model, `n > 1`, `stream_options` without `stream`).

Each model has a behaviour, so tests can make a reply break the way a real one can: "cut" closes the
connection mid-stream (what Starlette does when the generator raises), "garbled" sends a non-JSON chunk.

Run as a script it takes main.py's flags, so a stand-in container can use it as its entrypoint.
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Literal, Protocol

Behaviour = Literal["ok", "cut", "garbled"]
OWNED_BY = "Triton Inference Server"


def compact(obj: object) -> str:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False)


def reply_pieces(messages: list[dict[str, Any]]) -> list[str]:
    """The stand-in's deterministic "generation": echo the last user message, one word per response."""
    last = next((m.get("content") for m in reversed(messages) if m.get("role") == "user"), "")
    words = f"You said: {last}".split(" ")
    return [w if i == 0 else " " + w for i, w in enumerate(words)]


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A client that stops reading mid-stream (as tests do) is not an error worth a traceback."""
        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class Routes(Protocol):
    """What a stand-in answers: GET and POST, each given the request handler."""

    def handle_get(self, request: BaseHTTPRequestHandler) -> None: ...

    def handle_post(self, request: BaseHTTPRequestHandler) -> None: ...


def serve_in_thread(routes: Routes, host: str = "127.0.0.1", port: int = 0) -> ThreadingHTTPServer:
    """An HTTP/1.1 server for `routes` on a daemon thread (port 0: any free port), quiet in logs."""

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, format: str, *args: Any) -> None:  # quiet
            pass

        def do_GET(self) -> None:
            routes.handle_get(self)

        def do_POST(self) -> None:
            routes.handle_post(self)

    server = _Server((host, port), Handler)
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True).start()
    return server


@dataclass
class StandIn:
    models: dict[str, Behaviour]  # loaded: listed at /v1/models, served at /v1/chat/completions
    repository: Mapping[str, Behaviour] = field(default_factory=dict)  # loadable in explicit mode
    explicit: bool = False  # --model-control-mode explicit
    management_routes: bool = True  # /v1/models/{name}/load and /unload exist (r26.04+)
    created: int = field(default_factory=lambda: int(time.time()))
    requests: list[dict[str, Any]] = field(default_factory=list)
    server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        assert self.server is not None
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def start(self, host: str = "127.0.0.1", port: int = 0) -> StandIn:
        self.server = serve_in_thread(self, host, port)
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()

    def _model(self, name: str) -> dict[str, Any]:
        return {"id": name, "created": self.created, "object": "model", "owned_by": OWNED_BY}

    def handle_get(self, h: BaseHTTPRequestHandler) -> None:
        if h.path == "/v1/models":
            send_json(h, 200, {"object": "list", "data": [self._model(n) for n in self.models]})
        elif h.path.startswith("/v1/models/") and h.path.count("/") == 3:
            name = h.path.rsplit("/", 1)[1]
            if name in self.models:
                send_json(h, 200, self._model(name))
            else:
                send_json(h, 404, {"detail": f"Unknown model: {name}"})
        elif h.path == "/health/ready":
            send_raw(h, 200, b"", "application/json")
        elif h.path == "/metrics":
            send_raw(h, 200, b'nv_inference_request_success{model="x",version="1"} 0\n', "text/plain; charset=utf-8")
        else:
            send_json(h, 404, {"detail": "Not Found"})

    def handle_post(self, h: BaseHTTPRequestHandler) -> None:
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0))
        parts = h.path.split("/")
        if (
            self.management_routes
            and len(parts) == 5
            and parts[1:3] == ["v1", "models"]
            and parts[4] in ("load", "unload")
        ):
            self._manage(h, parts[3], parts[4])
            return
        if h.path != "/v1/chat/completions":
            send_json(h, 404, {"detail": "Not Found"})
            return
        try:
            body = json.loads(raw)
        except ValueError:
            send_json(h, 422, {"detail": [{"type": "json_invalid", "loc": ["body", 0], "msg": "JSON decode error"}]})
            return
        self.requests.append(body)
        missing = [key for key in ("model", "messages") if key not in body]
        if missing:
            detail = [
                {"type": "missing", "loc": ["body", key], "msg": "Field required", "input": body} for key in missing
            ]
            send_json(h, 422, {"detail": detail})
            return
        model = body["model"]
        if model not in self.models:
            send_json(h, 400, {"detail": f"Unknown model: {model}"})
            return
        if (body.get("n") or 1) > 1:
            send_json(
                h, 400, {"detail": f"Received n={body['n']}, but only single choice (n=1) is currently supported"}
            )
            return
        if body.get("stream_options") and not body.get("stream"):
            send_json(h, 400, {"detail": "`stream_options` can only be used when `stream` is True"})
            return
        pieces = reply_pieces(body["messages"])[: body.get("max_tokens") or 16]
        request_id = f"cmpl-{uuid.uuid1()}"
        created = int(time.time())
        if not body.get("stream"):
            text = "".join(pieces)
            send_json(
                h,
                200,
                {
                    "id": request_id,
                    "choices": [
                        {
                            "finish_reason": "stop",
                            "index": 0,
                            "message": {
                                "content": text,
                                "tool_calls": None,
                                "role": "assistant",
                                "function_call": None,
                            },
                            "logprobs": None,
                        }
                    ],
                    "created": created,
                    "model": model,
                    "system_fingerprint": None,
                    "object": "chat.completion",
                    "usage": {"prompt_tokens": 7, "total_tokens": 7 + len(pieces), "completion_tokens": len(pieces)},
                },
            )
            return
        self._stream(h, body, model, request_id, created, pieces)

    def _manage(self, h: BaseHTTPRequestHandler, name: str, action: str) -> None:
        """`TritonLLMEngine.load_model` / `unload_model` (r26.04+), with the statuses upstream's
        `python/openai/tests/test_model_management.py` asserts."""
        if not self.explicit:
            send_json(h, 400, {"detail": "Model load/unload requires --model-control-mode=explicit"})
        elif action == "load" and name in self.models:
            send_json(h, 400, {"detail": f"Model '{name}' is already loaded"})
        elif action == "load" and name not in self.repository:
            send_json(  # Triton's INTERNAL error -> ServerError -> 500
                h,
                500,
                {
                    "detail": f"Failed to load model '{name}': failed to load '{name}', failed to poll from model repository"
                },
            )
        elif action == "load":
            self.models[name] = self.repository[name]
            send_json(h, 200, self._model(name))
        elif name not in self.models:
            send_json(h, 400, {"detail": f"Unknown model: {name}"})
        else:
            del self.models[name]
            send_json(h, 200, {"status": "success", "model": name})

    def _stream(
        self,
        h: BaseHTTPRequestHandler,
        body: dict[str, Any],
        model: str,
        request_id: str,
        created: int,
        pieces: list[str],
    ) -> None:
        behaviour = self.models[model]
        h.send_response(200)
        h.send_header("content-type", "text/event-stream; charset=utf-8")
        h.send_header("Transfer-Encoding", "chunked")
        h.end_headers()

        def chunk(delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
            return {
                "id": request_id,
                "choices": [{"delta": delta, "logprobs": None, "finish_reason": finish, "index": 0}],
                "created": created,
                "model": model,
                "system_fingerprint": None,
                "object": "chat.completion.chunk",
                "usage": None,
            }

        events = [compact(chunk({"content": "", "function_call": None, "role": "assistant"}, None))]
        for i, piece in enumerate(pieces):
            last = i == len(pieces) - 1
            events.append(
                compact(chunk({"content": piece, "function_call": None, "role": None}, "stop" if last else None))
            )
        if (body.get("stream_options") or {}).get("include_usage"):
            usage = {"prompt_tokens": 7, "total_tokens": 7 + len(pieces), "completion_tokens": len(pieces)}
            events.append(compact({**chunk({}, None), "choices": [], "usage": usage}))
        events.append("[DONE]")
        if behaviour == "cut":
            events = events[:3]
        elif behaviour == "garbled":
            events.insert(2, "Internal Server Error")
        for event in events:
            write_chunk(h, f"data: {event}\n\n".encode())
        if behaviour == "cut":
            h.close_connection = True  # no terminating chunk: the body ends early, as when the generator raises
            return
        write_chunk(h, b"")


def write_chunk(h: BaseHTTPRequestHandler, data: bytes) -> None:
    h.wfile.write(f"{len(data):x}\r\n".encode() + data + b"\r\n")
    h.wfile.flush()


def send_json(h: BaseHTTPRequestHandler, status: int, payload: object) -> None:
    send_raw(h, status, compact(payload).encode(), "application/json")


def send_raw(h: BaseHTTPRequestHandler, status: int, data: bytes, content_type: str) -> None:
    h.send_response(status)
    h.send_header("content-type", content_type)
    h.send_header("content-length", str(len(data)))
    h.end_headers()
    h.wfile.write(data)


def main() -> None:
    """`main.py`'s flags (r26.08); serves the models it would load."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--model-repository", required=True)
    parser.add_argument("--tokenizer")
    parser.add_argument("--host", default="0.0.0.0")
    parser.add_argument("--openai-port", type=int, default=9000)
    parser.add_argument("--enable-kserve-frontends", action="store_true")
    parser.add_argument("--kserve-http-port", type=int, default=8000)
    parser.add_argument("--kserve-grpc-port", type=int, default=8001)
    parser.add_argument("--model-control-mode", choices=["none", "explicit"], default="none")
    parser.add_argument("--load-model", action="append")
    parser.add_argument("--default-max-tokens", type=int, default=16)
    parser.add_argument("--chat-template")
    args = parser.parse_args()
    if args.load_model and args.model_control_mode != "explicit":
        raise SystemExit("Error: Use of '--load-model' requires setting '--model-control-mode=explicit' as well.")
    repository = sorted(p.name for p in Path(args.model_repository).iterdir() if (p / "config.pbtxt").is_file())
    explicit = args.model_control_mode == "explicit"
    loaded = (repository if args.load_model == ["*"] else args.load_model or []) if explicit else repository
    standin = StandIn(dict.fromkeys(loaded, "ok"), repository=dict.fromkeys(repository, "ok"), explicit=explicit)
    standin.start(args.host, args.openai_port)
    # The line uvicorn prints when the frontend is up (its README's example output), with the bound port.
    print(f"INFO:     Uvicorn running on {standin.url} (Press CTRL+C to quit)", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
