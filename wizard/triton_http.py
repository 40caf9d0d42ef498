"""A small stdlib client for Triton's HTTP/REST API (KServe v2 + repository + generate extensions).

Only what the launcher and `modelwiz chat` need. Loads are synchronous on the server side (the
call returns when the model is loaded or has failed), so `load` takes a long timeout.
"""

from __future__ import annotations

import http.client
import json
import socket
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

DEFAULT_TIMEOUT_S = 10.0
LOAD_TIMEOUT_S = 3600.0  # an LLM load (weights + CUDA graphs) can take many minutes
GENERATE_TIMEOUT_S = 600.0


class TritonHttpError(Exception):
    """Triton answered with an error status (`status` set) or could not be reached (`status` None)."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class ModelState:
    name: str
    version: str | None
    state: str  # READY, UNAVAILABLE, LOADING, UNLOADING, or "" when not loaded yet
    reason: str


class TritonHttp:
    def __init__(self, base_url: str, *, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        parsed = urllib.parse.urlsplit(base_url)
        if parsed.scheme != "http" or not parsed.hostname:
            raise ValueError(f"not an http URL: {base_url!r}")
        self.base_url = base_url.rstrip("/")
        self._host = parsed.hostname
        self._port = parsed.port or 80
        self._timeout = timeout_s

    # -- plumbing -------------------------------------------------------------------------------

    def _open(
        self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None
    ) -> tuple[http.client.HTTPConnection, http.client.HTTPResponse]:
        conn = http.client.HTTPConnection(self._host, self._port, timeout=timeout_s or self._timeout)
        data = None if body is None else json.dumps(body).encode()
        headers = {"Content-Type": "application/json"} if data is not None else {}
        try:
            conn.request(method, path, body=data, headers=headers)
            return conn, conn.getresponse()
        except (OSError, http.client.HTTPException) as error:
            conn.close()
            raise TritonHttpError(f"{method} {self.base_url}{path}: {describe_error(error)}") from error

    def _call(self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None) -> tuple[int, Any]:
        conn, response = self._open(method, path, body, timeout_s=timeout_s)
        try:
            raw = response.read()
        except (OSError, http.client.HTTPException) as error:
            raise TritonHttpError(f"{method} {self.base_url}{path}: {describe_error(error)}") from error
        finally:
            conn.close()
        payload: Any = None
        if raw:
            try:
                payload = json.loads(raw)
            except ValueError:
                payload = raw.decode(errors="replace")
        return response.status, payload

    def _ok(self, method: str, path: str, body: Any = None, *, timeout_s: float | None = None) -> Any:
        status, payload = self._call(method, path, body, timeout_s=timeout_s)
        if status >= 300:
            raise TritonHttpError(_error_text(payload) or f"HTTP {status}", status=status)
        return payload

    def _status(self, path: str) -> bool:
        status, _ = self._call("GET", path)
        return status == 200

    # -- health and state -----------------------------------------------------------------------

    def live(self) -> bool:
        """`GET /v2/health/live` is 200. False (not an error) when the server is not up yet."""
        try:
            return self._status("/v2/health/live")
        except TritonHttpError:
            return False

    def ready(self) -> bool:
        try:
            return self._status("/v2/health/ready")
        except TritonHttpError:
            return False

    def model_ready(self, name: str) -> bool:
        try:
            return self._status(f"/v2/models/{_quote(name)}/ready")
        except TritonHttpError:
            return False

    def repository_index(self) -> list[ModelState]:
        payload = self._ok("POST", "/v2/repository/index", {})
        return [
            ModelState(
                name=str(row.get("name", "")),
                version=row.get("version"),
                state=str(row.get("state", "")),
                reason=str(row.get("reason", "")),
            )
            for row in payload or []
        ]

    # -- model control --------------------------------------------------------------------------

    def load(self, name: str, *, timeout_s: float = LOAD_TIMEOUT_S) -> None:
        """Load (or reload) a model; returns when it is loaded, raises TritonHttpError if it failed."""
        self._ok("POST", f"/v2/repository/models/{_quote(name)}/load", {}, timeout_s=timeout_s)

    def unload(self, name: str, *, timeout_s: float = LOAD_TIMEOUT_S) -> None:
        self._ok("POST", f"/v2/repository/models/{_quote(name)}/unload", {}, timeout_s=timeout_s)

    # -- generate extension ---------------------------------------------------------------------

    def generate(self, name: str, body: dict[str, Any], *, timeout_s: float = GENERATE_TIMEOUT_S) -> dict[str, Any]:
        return self._ok("POST", f"/v2/models/{_quote(name)}/generate", body, timeout_s=timeout_s)

    def generate_stream(
        self, name: str, body: dict[str, Any], *, timeout_s: float = GENERATE_TIMEOUT_S
    ) -> Iterator[dict[str, Any]]:
        """The SSE events of `generate_stream`, decoded. An `{"error": ...}` event raises."""
        path = f"/v2/models/{_quote(name)}/generate_stream"
        conn, response = self._open("POST", path, body, timeout_s=timeout_s)
        try:
            if response.status >= 300:
                raw = response.read()
                try:
                    payload: Any = json.loads(raw)
                except ValueError:
                    payload = raw.decode(errors="replace")
                raise TritonHttpError(_error_text(payload) or f"HTTP {response.status}", status=response.status)
            for event in parse_sse(response):
                if isinstance(event, dict) and "error" in event:
                    raise TritonHttpError(str(event["error"]), status=response.status)
                yield event
        except (OSError, http.client.HTTPException) as error:
            raise TritonHttpError(f"POST {self.base_url}{path}: {describe_error(error)}") from error
        finally:
            conn.close()


MAX_EVENT_BYTES = 16 * 1024 * 1024  # no generate_stream event comes near this


def parse_sse(lines: Any) -> Iterator[Any]:
    """Decode `data:` events from an iterable of byte lines (an HTTP response, a list).

    Raises TritonHttpError for a stream that is not what Triton sends: an event that is not a JSON
    object, an event cut off by the end of the stream (no blank line after it), a line beyond
    MAX_EVENT_BYTES, or a stream that ends without any event."""
    data: list[str] = []
    size = 0
    seen = False
    for raw in lines:
        size += len(raw)
        if size > MAX_EVENT_BYTES:
            raise TritonHttpError(f"the server sent an event longer than {MAX_EVENT_BYTES // 2**20} MiB")
        line = raw.decode("utf-8", errors="replace").rstrip("\r\n")
        if line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        elif line == "":
            size = 0
            if data:
                seen = True
                yield _decode_event("\n".join(data))
                data = []
    if data:
        raise TritonHttpError(f"the reply stream was cut off in the middle of an event: {_preview(chr(10).join(data))}")
    if not seen:
        raise TritonHttpError("the server ended the reply stream without sending any event")


def _preview(text: str) -> str:
    return repr(text[:80] + ("..." if len(text) > 80 else ""))


def _decode_event(text: str) -> dict[str, Any]:
    try:
        event = json.loads(text)
    except (ValueError, RecursionError):
        raise TritonHttpError(f"the server sent an event that is not JSON: {_preview(text)}") from None
    if not isinstance(event, dict):
        raise TritonHttpError(f"the server sent an event that is not a JSON object: {_preview(text)}")
    return event


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


def _error_text(payload: Any) -> str:
    if isinstance(payload, dict) and "error" in payload:
        return str(payload["error"])
    if isinstance(payload, str):
        return payload.strip()
    return ""


def describe_error(error: BaseException) -> str:
    """A connection failure in a few words (\"connection refused\", \"timed out\"), for one-line errors."""
    if isinstance(error, (socket.timeout, TimeoutError)):
        return "timed out"
    if isinstance(error, ConnectionRefusedError):
        return "connection refused"
    return str(error) or type(error).__name__


def generate_body(
    prompt: str, *, max_tokens: int = 256, temperature: float = 0.7, stream: bool = True
) -> dict[str, Any]:
    """A generate(_stream) body for the vLLM backend. max_tokens is always sent: vLLM's default
    is 16. The prompt is left out of the reply (streaming requires that)."""
    return {
        "text_input": prompt,
        "parameters": {
            "stream": stream,
            "max_tokens": max_tokens,
            "temperature": temperature,
            "exclude_input_in_output": True,
        },
    }


def curl_example(
    url: str, model: str, *, prompt: str = "What is Triton Inference Server?", max_tokens: int = 64
) -> str:
    """A ready-to-paste generate request (max_tokens always sent: vLLM's default is 16)."""
    body = json.dumps(generate_body(prompt, max_tokens=max_tokens, temperature=0, stream=False))
    return f"curl -s -X POST {url}/v2/models/{model}/generate -H 'Content-Type: application/json' -d '{body}'"
