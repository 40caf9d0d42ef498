"""Where a running server answers, as text: the one renderer `up`, `status` and the TUI show.

The OpenAI-compatible base URL comes first (what applications call), with a ready-to-paste `curl`
request and an `openai` Python SDK example, then Triton's own /v2 HTTP, gRPC and metrics endpoints.
A model the frontend serves at /v1/completions only (its chat template is not the server's) gets
a completions example instead of a chat one.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from wizard.container import NO_OPENAI, LaunchSpec
from wizard.triton_http import curl_example

if TYPE_CHECKING:
    from wizard.launcher import LaunchStatus

EXAMPLE_PROMPT = "What is Triton Inference Server?"
EXAMPLE_MAX_TOKENS = 64  # always sent: a request without it gets the server's default


@dataclass(frozen=True)
class EndpointsView:
    """What the renderer needs; `openai` is the OpenAI base URL (`http://host:9000/v1`) or None."""

    http: str  # "http://127.0.0.1:8000"
    grpc: str  # "127.0.0.1:8001"
    metrics: str  # "http://127.0.0.1:8002/metrics"
    openai: str | None = None
    models: tuple[str, ...] = ()
    chat: Mapping[str, bool] = field(default_factory=dict)  # model -> chats at /v1/chat/completions
    openai_off: str | None = None  # why there is no OpenAI API (shown instead of it)

    def chats(self, model: str) -> bool:
        return self.chat.get(model, True)


def spec_endpoints(spec: LaunchSpec) -> EndpointsView:
    """The endpoints of the container `spec` describes."""
    only = {name for name, _ in spec.completions_only}
    return EndpointsView(
        http=spec.http_url,
        grpc=spec.grpc_address,
        metrics=spec.metrics_url,
        openai=spec.openai_url,
        models=tuple(spec.models),
        chat={m: m not in only for m in spec.models},
        openai_off=None if spec.openai_off == NO_OPENAI else spec.openai_off,
    )


def status_endpoints(status: LaunchStatus, chat: Mapping[str, bool] | None = None) -> EndpointsView:
    """The endpoints of a running modelwiz container (`launcher.status`), for `status` and the home
    screen; `chat`: per model, whether it chats at /v1/chat/completions (default: all do)."""
    ready = tuple(m.name for m in status.models if m.state == "READY")
    return EndpointsView(
        http=status.url or "",
        grpc=status.grpc_address or "",
        metrics=status.metrics_url or "",
        openai=status.openai_url,
        models=ready,
        chat=dict(chat or {}),
    )


def openai_curl(base_url: str, model: str, *, chat: bool = True, prompt: str = EXAMPLE_PROMPT) -> str:
    """A ready-to-paste request to the OpenAI API: chat completions, or completions for a model
    that is completions-only there."""
    if chat:
        route = "chat/completions"
        body: dict[str, object] = {"model": model, "messages": [{"role": "user", "content": prompt}]}
    else:
        route = "completions"
        body = {"model": model, "prompt": prompt}
    body["max_tokens"] = EXAMPLE_MAX_TOKENS
    return f"curl -s {base_url}/{route} -H 'Content-Type: application/json' -d '{json.dumps(body)}'"


def openai_python(base_url: str, model: str, *, chat: bool = True, prompt: str = EXAMPLE_PROMPT) -> list[str]:
    """A ready-to-paste `openai` SDK snippet that streams a reply (the server takes any API key)."""
    lines = ["from openai import OpenAI", f'client = OpenAI(base_url="{base_url}", api_key="none")']
    if chat:
        lines += [
            f'stream = client.chat.completions.create(model="{model}", max_tokens={EXAMPLE_MAX_TOKENS}, stream=True,',
            f'    messages=[{{"role": "user", "content": {json.dumps(prompt)}}}])',
            "for chunk in stream:",
            '    print(chunk.choices[0].delta.content or "", end="", flush=True)',
        ]
    else:
        lines += [
            f'reply = client.completions.create(model="{model}", max_tokens={EXAMPLE_MAX_TOKENS}, '
            f"prompt={json.dumps(prompt)})",
            "print(reply.choices[0].text)",
        ]
    return lines


def render_endpoints(view: EndpointsView, model: str | None = None) -> list[str]:
    """The endpoints block: OpenAI base URL and its examples first, then the /v2 URLs."""
    model = model or (view.models[0] if view.models else None)
    lines: list[str] = []
    if view.openai:
        lines.append(f"  OpenAI   {view.openai}")
        if model:
            chat = view.chats(model)
            lines.append("  curl:")
            lines.append(f"    {openai_curl(view.openai, model, chat=chat)}")
            lines.append("  Python (pip install openai):")
            lines += [f"    {line}" for line in openai_python(view.openai, model, chat=chat)]
        only = [m for m in view.models if not view.chats(m)]
        if only:
            lines.append(f"  completions only (no chat template of their own here): {', '.join(only)}")
    elif view.openai_off:
        lines.append(f"  OpenAI   off: {view.openai_off}")
    lines.append(f"  HTTP     {view.http}")
    lines.append(f"  gRPC     {view.grpc}")
    lines.append(f"  metrics  {view.metrics}")
    if model:
        lines.append("  /v2 generate:")
        lines.append(f"    {curl_example(view.http, model)}")
    return lines
