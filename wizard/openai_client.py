"""A small client for Triton's OpenAI-compatible frontend: `GET /v1/models` and streaming
`POST /v1/chat/completions`, with tokens per second for each reply.

The wire format is the frontend's (triton-inference-server/server `python/openai/openai_frontend`):
errors are FastAPI's `{"detail": "..."}`; a stream is Server-Sent Events, one
`data: {chat.completion.chunk}` per backend response, the first carrying only the role, an optional
last chunk with `usage` when `stream_options.include_usage` is set (25.07+), then `data: [DONE]`
(`engine/triton_engine.py` `_streaming_chat_iterator`). A failure after the headers went out cannot
change the status, so the stream just stops: a stream without `[DONE]` is a failed reply.
"""

from __future__ import annotations

import http.client
import json
import time
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from wizard.errors import ModelwizError, UsageError
from wizard.triton_http import describe_error

MODELS_PATH = "/v1/models"
CHAT_PATH = "/v1/chat/completions"
READY_PATH = "/health/ready"  # the frontend's own route, not KServe's /v2/health/ready
DONE = "[DONE]"
SSE_DATA = "data:"
DEFAULT_TIMEOUT_S = 30.0
REPLY_TIMEOUT_S = 600.0  # between two chunks of a reply: a long prefill on a loaded server
LOAD_TIMEOUT_S = 3600.0  # a load blocks until the model is ready: minutes for a large LLM
START_HINT = "start it with `modelwiz up`, or check the port with `modelwiz status`"

Message = Mapping[str, Any]
TokenCount = Literal["usage", "chunks"]


@dataclass(frozen=True)
class OpenAIModel:
    id: str
    created: int
    owned_by: str


@dataclass(frozen=True)
class ReplyStats:
    """How fast one reply came. `completion_tokens` is the server's count when it sent `usage`,
    else the number of content chunks (one per token with the vLLM backend's streaming)."""

    completion_tokens: int
    prompt_tokens: int | None
    counted_from: TokenCount
    seconds: float  # request sent -> [DONE]
    first_token_seconds: float | None  # request sent -> first content

    @property
    def tokens_per_second(self) -> float:
        return self.completion_tokens / self.seconds if self.seconds > 0 else 0.0

    def summary(self) -> str:
        """`42 tokens in 1.3 s, 31.5 tokens/s` (with `~` when counted from chunks)."""
        approx = "" if self.counted_from == "usage" else "~"
        return f"{approx}{self.completion_tokens} tokens in {self.seconds:.1f} s, {approx}{self.tokens_per_second:.1f} tokens/s"


@dataclass
class ChatStream:
    """One streamed reply: iterate for the text pieces; `text`, `finish_reason` and `stats` are set
    once the iteration ends with `[DONE]`. Raises ModelwizError when the stream is cut or garbled."""

    model: str
    _events: Iterator[str]
    _started: float
    _where: str
    text: str = ""
    finish_reason: str | None = None
    stats: ReplyStats | None = None
    _chunks: int = field(default=0, init=False)

    def __iter__(self) -> Iterator[str]:
        first: float | None = None
        usage: Mapping[str, Any] | None = None
        pieces: list[str] = []
        for data in self._events:
            if data == DONE:
                end = time.monotonic()
                self.text = "".join(pieces)
                tokens = _int(usage, "completion_tokens") if usage else None
                self.stats = ReplyStats(
                    completion_tokens=tokens if tokens is not None else self._chunks,
                    prompt_tokens=_int(usage, "prompt_tokens") if usage else None,
                    counted_from="usage" if tokens is not None else "chunks",
                    seconds=end - self._started,
                    first_token_seconds=None if first is None else first - self._started,
                )
                return
            chunk = _json_chunk(data, self._where)
            if "error" in chunk:
                raise ModelwizError(f"{self.model} failed mid-reply: {_error_text(chunk['error'])}", hint=_LOG_HINT)
            if isinstance(chunk.get("usage"), dict):
                usage = chunk["usage"]
            for choice in chunk.get("choices") or ():
                if not isinstance(choice, dict):
                    continue
                delta = choice.get("delta")
                content = delta.get("content") if isinstance(delta, dict) else None
                if isinstance(content, str) and content:
                    if first is None:
                        first = time.monotonic()
                    self._chunks += 1
                    pieces.append(content)
                    yield content
                if choice.get("finish_reason"):
                    self.finish_reason = str(choice["finish_reason"])
        self.text = "".join(pieces)
        raise ModelwizError(
            f"the reply from {self.model} was cut off after {self._chunks} chunks (the stream ended without [DONE])",
            hint=_LOG_HINT,
        )


_LOG_HINT = "the server stopped or failed mid-reply; its log says why (podman logs on the modelwiz container)"


class OpenAIClient:
    """Talks to one OpenAI-compatible server, e.g. `http://127.0.0.1:9000` (a trailing `/v1` is fine)."""

    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(base_url.rstrip("/"))
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise UsageError(f"{base_url!r} is not an http URL", hint="use a URL such as http://127.0.0.1:9000")
        self._parsed = parsed
        self._prefix = parsed.path.removesuffix("/v1")
        self.base_url = f"{parsed.scheme}://{parsed.netloc}{self._prefix}"
        self.timeout_s = timeout_s

    def models(self) -> list[OpenAIModel]:
        """The models the server lists at /v1/models."""
        conn, response = self._request("GET", MODELS_PATH, None, self.timeout_s)
        try:
            payload = _json_body(response.read(), self.base_url + MODELS_PATH)
        finally:
            conn.close()
        data = payload.get("data")
        if not isinstance(data, list):
            raise ModelwizError(f"{self.base_url}{MODELS_PATH} sent no model list", hint=_NOT_OPENAI_HINT)
        return [
            OpenAIModel(id=str(m["id"]), created=_int(m, "created") or 0, owned_by=str(m.get("owned_by", "")))
            for m in data
            if isinstance(m, dict) and "id" in m
        ]

    def ready(self) -> bool:
        """True when the frontend answers /health/ready with 200 (its in-process Triton is ready)."""
        try:
            conn, _ = self._request("GET", READY_PATH, None, self.timeout_s)
        except ModelwizError:
            return False
        conn.close()
        return True

    def load(self, name: str, *, timeout_s: float = LOAD_TIMEOUT_S) -> OpenAIModel:
        """Load `name` from the repository and wait until it is ready (`POST /v1/models/{name}/load`,
        frontends in explicit model control mode, 26.04+). Only models loaded this way, or at startup,
        appear in /v1/models: a load through KServe's /v2/repository API is invisible to the frontend."""
        path = f"{MODELS_PATH}/{_quote(name)}/load"
        conn, response = self._request("POST", path, {}, timeout_s, subject=name, not_found=_NO_MODEL_MANAGEMENT)
        try:
            payload = _json_body(response.read(), self.base_url + path)
        finally:
            conn.close()
        return OpenAIModel(
            id=str(payload.get("id", name)),
            created=_int(payload, "created") or 0,
            owned_by=str(payload.get("owned_by", "")),
        )

    def unload(self, name: str, *, timeout_s: float = LOAD_TIMEOUT_S) -> None:
        """Unload `name`; in-flight requests finish first (`POST /v1/models/{name}/unload`, 26.04+)."""
        path = f"{MODELS_PATH}/{_quote(name)}/unload"
        conn, response = self._request("POST", path, {}, timeout_s, subject=name, not_found=_NO_MODEL_MANAGEMENT)
        response.read()
        conn.close()

    def chat_stream(
        self,
        model: str,
        messages: Sequence[Message],
        *,
        max_tokens: int,
        temperature: float | None = None,
        include_usage: bool = True,
    ) -> ChatStream:
        """Start a streamed chat completion. `include_usage` asks for the server's token count
        (frontends before 25.07 ignore it; the count then comes from the chunks)."""
        body: dict[str, Any] = {
            "model": model,
            "messages": [dict(m) for m in messages],
            "max_tokens": max_tokens,
            "stream": True,
        }
        if temperature is not None:
            body["temperature"] = temperature
        if include_usage:
            body["stream_options"] = {"include_usage": True}
        started = time.monotonic()
        conn, response = self._request("POST", CHAT_PATH, body, REPLY_TIMEOUT_S, subject=model)
        return ChatStream(
            model=model,
            _events=_closing(conn, sse_data(response), model),
            _started=started,
            _where=self.base_url + CHAT_PATH,
        )

    def _request(
        self,
        method: str,
        path: str,
        body: Any,
        timeout_s: float,
        *,
        subject: str | None = None,
        not_found: tuple[str, str] | None = None,
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        url = self.base_url + path
        connection_class = http.client.HTTPSConnection if self._parsed.scheme == "https" else http.client.HTTPConnection
        conn = connection_class(self._parsed.hostname or "", self._parsed.port, timeout=timeout_s)
        headers = {"Accept": "text/event-stream" if body is not None else "application/json"}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = "application/json"
        try:
            conn.request(method, self._prefix + path, body=data, headers=headers)
            response = conn.getresponse()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            raise ModelwizError(f"nothing answers at {url} ({describe_error(error)})", hint=START_HINT) from error
        if response.status >= 400:
            try:
                detail = _error_detail(response.read())
            except (OSError, http.client.HTTPException):
                detail = ""
            finally:
                conn.close()
            who = f"{subject}: " if subject else ""
            if response.status == 404 and detail in ("", "Not Found"):  # no such route (FastAPI's own 404)
                message, hint = not_found or (f"{url} is not an OpenAI endpoint", _NOT_OPENAI_HINT)
                raise ModelwizError(f"{message} (HTTP 404 from {url})", hint=hint)
            raise ModelwizError(
                f"{who}{detail or response.reason} (HTTP {response.status} from {url})",
                hint="check the model name with `modelwiz status`" if response.status < 500 else _LOG_HINT,
            )
        return conn, response


_NOT_OPENAI_HINT = "point at Triton's OpenAI port (9000 unless `modelwiz status` says otherwise)"
_NO_MODEL_MANAGEMENT = (
    "this OpenAI frontend cannot load or unload models",
    "it needs image 26.04 or newer started with --model-control-mode explicit; restart the server to change its models",
)


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def sse_data(lines: Iterable[bytes]) -> Iterator[str]:
    """The `data:` payload of each Server-Sent Event in a byte-line stream (an HTTP response).
    Several `data:` lines of one event are joined with newlines; comments and other fields are skipped."""
    data: list[str] = []
    for raw in lines:
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if not line:
            if data:
                yield "\n".join(data)
                data = []
        elif line.startswith(SSE_DATA):
            value = line[len(SSE_DATA) :]
            data.append(value[1:] if value.startswith(" ") else value)
    if data:
        yield "\n".join(data)


def _closing(conn: http.client.HTTPConnection, events: Iterator[str], model: str) -> Iterator[str]:
    try:
        yield from events
    except (OSError, http.client.HTTPException) as error:
        raise ModelwizError(f"the reply from {model} was cut off ({describe_error(error)})", hint=_LOG_HINT) from error
    finally:
        conn.close()


def _json_chunk(data: str, where: str) -> dict[str, Any]:
    try:
        chunk = json.loads(data)
    except ValueError:
        chunk = None
    if not isinstance(chunk, dict):
        shown = data if len(data) <= 60 else data[:57] + "..."
        raise ModelwizError(f"{where} sent a chunk that is not a JSON object: {shown!r}", hint=_NOT_OPENAI_HINT)
    return chunk


def _json_body(raw: bytes, where: str) -> dict[str, Any]:
    try:
        payload = json.loads(raw)
    except ValueError as error:
        raise ModelwizError(f"{where} did not answer with JSON", hint=_NOT_OPENAI_HINT) from error
    if not isinstance(payload, dict):
        raise ModelwizError(f"{where} did not answer with a JSON object", hint=_NOT_OPENAI_HINT)
    return payload


def _error_detail(raw: bytes) -> str:
    """FastAPI's `{"detail": ...}`, OpenAI's `{"error": {"message": ...}}`, or the text itself."""
    text = raw.decode("utf-8", errors="replace").strip()
    try:
        payload = json.loads(text)
    except ValueError:
        return text.splitlines()[0] if text else ""
    if isinstance(payload, dict):
        if "detail" in payload:
            return _error_text(payload["detail"])
        if "error" in payload:
            return _error_text(payload["error"])
    return text


def _error_text(value: object) -> str:
    if isinstance(value, dict) and "message" in value:
        return str(value["message"])
    if isinstance(value, list):  # FastAPI validation errors: [{"loc": [...], "msg": "..."}]
        return "; ".join(str(v.get("msg", v)) if isinstance(v, dict) else str(v) for v in value)
    return " ".join(str(value).split())


def _int(mapping: Mapping[str, Any] | None, key: str) -> int | None:
    value = mapping.get(key) if mapping else None
    return value if isinstance(value, int) and not isinstance(value, bool) else None
