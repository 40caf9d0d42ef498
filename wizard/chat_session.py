"""A conversation with one served model, streamed, for `modelwiz chat` and the wizard alike.

The route is chosen once, when the session opens, and said in `notes`:
- `openai`: Triton's OpenAI frontend at `/v1/chat/completions`, when the server runs it and the
  model chats there with its own template (the frontend renders the conversation);
- `template`: Triton's `/v2/models/NAME/generate_stream`, with the model's own chat template (from its
  weights folder) rendered here, as transformers' `apply_chat_template` would;
- `raw`: `/v2` generate_stream with the message as raw text and no history, for a model without a
  chat template (a base model); the notes say so, so a user is never silently wrong.
Every failure is a one-line ModelwizError.
"""

from __future__ import annotations

import time
from collections.abc import Generator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from wizard.chat_template import ChatTemplate, load_chat_template
from wizard.conversation import Conversation
from wizard.errors import ModelwizError, UsageError
from wizard.openai_client import OpenAIClient
from wizard.openai_models import chat_support, weights_folder
from wizard.triton_http import TritonHttp, TritonHttpError, generate_body

Route = Literal["openai", "template", "raw"]

DEFAULT_MAX_TOKENS = 256  # vLLM alone would stop at 16
DEFAULT_TEMPERATURE = 0.7
LOG_HINT = "read the server log for the reason (`modelwiz status`)"
START_HINT = "start it with `modelwiz up`"
ROUTE_LABELS: dict[Route, str] = {
    "openai": "chat completions",
    "template": "/v2 generate_stream",
    "raw": "/v2 generate_stream",
}


@dataclass(frozen=True)
class ChatTarget:
    """Where a model answers: Triton's HTTP URL, and the OpenAI base URL when the model chats there
    with its own template; otherwise why not, and its weights folder on this host (its chat template)."""

    http: str
    openai: str | None = None
    why_v2: str | None = None  # why the conversation goes over /v2 although an OpenAI API runs
    weights: Path | None = None


def chat_target(
    model: str,
    http: str,
    *,
    openai: str | None = None,
    repository: Path | None = None,
    mount_point: str | None = None,
    chat_model: str | None = None,
) -> ChatTarget:
    """Where `model` chats on a server whose OpenAI API (if any) is at `openai` and uses `chat_model`'s
    tokenizer, read from the repository it serves (`repository` on this host, `mount_point` in the
    container). Without the repository's whereabouts the model is taken to chat where the API runs."""
    if repository is None or mount_point is None:
        return ChatTarget(http=http, openai=openai)
    weights = weights_folder(repository, mount_point, model)
    if openai is None:
        return ChatTarget(http=http, weights=weights)
    # The server's model goes along: a model chats there when its template renders like that one's.
    compared = [model] if chat_model in (None, model) else [model, chat_model]
    support = chat_support(repository, mount_point, compared, chat_model)[0]
    if support.chat:
        return ChatTarget(http=http, openai=openai, weights=weights)
    return ChatTarget(http=http, why_v2=support.reason, weights=weights)


class ChatSession:
    """One conversation with `model` at `target`: `send(text)` streams the reply's pieces and records
    it in the conversation; `reset()` forgets the turns (the system message stays)."""

    def __init__(
        self,
        model: str,
        target: ChatTarget,
        *,
        system: str | None = None,
        max_tokens: int = DEFAULT_MAX_TOKENS,
        temperature: float = DEFAULT_TEMPERATURE,
        log_hint: str = LOG_HINT,
    ) -> None:
        if max_tokens < 1:
            raise UsageError("max_tokens must be at least 1")
        self.model = model
        self.target = target
        self.max_tokens = max_tokens
        self.temperature = temperature
        self.log_hint = log_hint
        self.conversation = Conversation(system=system)
        self.stats: str | None = None  # the last reply's "N tokens in S s, R tokens/s"
        self.tokens_per_second: float | None = None  # the last reply's speed
        self._template: ChatTemplate | None = None
        self._openai: OpenAIClient | None = None
        self._http: TritonHttp | None = None
        self.notes: tuple[str, ...] = ()
        self.route: Route
        if target.openai:
            self._open_openai(target.openai)
        else:
            self._open_v2()

    @property
    def where(self) -> str:
        """The URL the conversation goes to and how, e.g. `http://127.0.0.1:9000/v1 (chat completions)`."""
        url = self.target.openai if self.route == "openai" else self.target.http
        return f"{url} ({ROUTE_LABELS[self.route]})"

    def _open_openai(self, url: str) -> None:
        client = OpenAIClient(url)
        if self.model not in {m.id for m in client.models()}:
            raise ModelwizError(
                f"model {self.model} is not served at {client.base_url}/v1/models",
                hint="check `modelwiz status`, then `modelwiz up`",
            )
        self._openai = client
        self.route = "openai"

    def _open_v2(self) -> None:
        url = self.target.http
        try:
            http = TritonHttp(url)
        except ValueError as error:
            raise UsageError(str(error), hint="use a URL such as http://127.0.0.1:8000") from error
        if not http.live():
            raise ModelwizError(
                f"{self.model} failed to answer: Triton does not answer at {url}",
                hint=f"{START_HINT}; if it runs, {self.log_hint}",
            )
        if not http.model_ready(self.model):
            raise ModelwizError(
                f"model {self.model} is not loaded at {url}", hint="check `modelwiz status`, then `modelwiz up`"
            )
        self._http = http
        weights = self.target.weights
        self._template = load_chat_template(weights) if weights is not None else None
        notes = [f"{self.model}: {self.target.why_v2}"] if self.target.why_v2 else []
        if self._template is not None:
            self.route = "template"
            notes.append(f"{self.model}: its own chat template over /v2 ({self._template.origin.name})")
        else:
            self.route = "raw"
            notes.append(f"{self.model}: no chat template here, so each message goes as raw text without the history")
        self.notes = tuple(notes)

    def reset(self) -> None:
        self.conversation.reset()

    def prompt(self, messages: list[dict[str, str]]) -> str:
        """The text /v2 generate gets for `messages`: the chat template's rendering, else the last message."""
        if self._template is not None:
            return self._template.render(messages)
        return messages[-1]["content"]

    def send(self, text: str) -> Iterator[str]:
        """The reply to `text` after the conversation so far, piece by piece; once it is whole it joins
        the conversation and `stats` says how fast it came. A failed reply leaves the question unanswered
        (the next one replaces it)."""
        messages = self.conversation.ask(text)
        if self._openai is not None:
            reply = yield from self._openai_reply(self._openai, messages)
        else:
            assert self._http is not None
            reply = yield from self._v2_reply(self._http, messages)
        self.conversation.answer(reply)

    def _openai_reply(self, client: OpenAIClient, messages: list[dict[str, str]]) -> Generator[str, None, str]:
        stream = client.chat_stream(self.model, messages, max_tokens=self.max_tokens, temperature=self.temperature)
        yield from stream
        assert stream.stats is not None  # set when the stream ended with [DONE]
        self.stats = stream.stats.summary()
        self.tokens_per_second = stream.stats.tokens_per_second
        return stream.text

    def _v2_reply(self, http: TritonHttp, messages: list[dict[str, str]]) -> Generator[str, None, str]:
        body = generate_body(self.prompt(messages), max_tokens=self.max_tokens, temperature=self.temperature)
        started, pieces = time.monotonic(), []
        try:
            for event in http.generate_stream(self.model, body):
                piece = event.get("text_output") if isinstance(event, dict) else None
                if not isinstance(piece, str):
                    raise ModelwizError(
                        f"{self.target.http} sent a generate_stream event without text_output",
                        hint="point at Triton's HTTP port",
                    )
                pieces.append(piece)
                yield piece
        except TritonHttpError as error:
            raise ModelwizError(f"{self.model} failed to answer: {error}", hint=self.log_hint) from error
        seconds = time.monotonic() - started
        rate = len(pieces) / seconds if seconds > 0 else 0.0
        self.stats = f"~{len(pieces)} tokens in {seconds:.1f} s, ~{rate:.1f} tokens/s"
        self.tokens_per_second = rate
        return "".join(pieces)
