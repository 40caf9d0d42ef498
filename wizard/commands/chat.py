"""`modelwiz chat NAME`: a conversation with a loaded model, streamed, with tokens per second.

Over the OpenAI-compatible API (`/v1/chat/completions`) when the server runs Triton's OpenAI
frontend and the model chats there with its own template; otherwise over Triton's
`/v2/models/NAME/generate_stream`, with the model's chat template (from its weights folder in the
repository) rendered here. `/reset` starts the conversation again; an empty line or Ctrl-D ends.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.container import DEFAULT_HTTP_URL

if TYPE_CHECKING:
    from wizard.chat_template import ChatTemplate
    from wizard.conversation import Conversation

DEFAULT_PROMPT = "In one paragraph, what is NVIDIA Triton Inference Server?"
RESET = "/reset"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wizard.commands.up import add_name_argument

    parser.add_argument("model", metavar="NAME", help="the Triton model name")
    parser.add_argument("--prompt", help="one prompt, answered once (default: ask on a terminal, else read stdin)")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        metavar="N",
        help="longest reply in tokens (default 256; vLLM alone would stop at 16)",
    )
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument("--system", metavar="TEXT", help="a system message that starts the conversation")
    parser.add_argument(
        "--interactive",
        "-i",
        action="store_true",
        help="hold a conversation even when stdin is not a terminal (one message per line)",
    )
    parser.add_argument(
        "--url", help="Triton's HTTP URL (default: read from the container, else http://127.0.0.1:8000)"
    )
    parser.add_argument(
        "--openai-url",
        metavar="URL",
        help="the OpenAI-compatible base URL (default: read from the container; with --url alone, /v2 only)",
    )
    add_name_argument(parser)


@dataclass(frozen=True)
class Server:
    http: str
    openai: str | None = None  # the OpenAI base URL, when the model chats there with its own template
    why_v2: str | None = None  # why the conversation goes over /v2 although an OpenAI API runs
    weights: Path | None = None  # the model's weights folder on this host (its chat template)


def _server(args: argparse.Namespace) -> Server:
    """Where to talk to the model: the flags, else the modelwiz container's labels."""
    from wizard import launcher, podman_conn
    from wizard.errors import ModelwizError

    if args.url or args.openai_url:
        return Server(http=args.url or DEFAULT_HTTP_URL, openai=args.openai_url)
    try:
        client = podman_conn.connect()
    except ModelwizError:
        return Server(http=DEFAULT_HTTP_URL)
    try:
        state = launcher.status(client, args.name)
    finally:
        client.close()
    if not state.exists or state.state != "running":
        raise ModelwizError(f"Triton is not running ({args.name}: {state.state})", hint="start it with `modelwiz up`")
    http = state.url or DEFAULT_HTTP_URL
    if state.repository is None or state.mount_point is None:
        return Server(http=http, openai=state.openai_url)
    from wizard.openai_models import chat_support, weights_folder

    root = Path(state.repository)
    weights = weights_folder(root, state.mount_point, args.model)
    if state.openai_url is None:
        return Server(http=http, weights=weights)
    (support,) = chat_support(root, state.mount_point, [args.model], state.chat_model)
    if support.chat:
        return Server(http=http, openai=state.openai_url, weights=weights)
    return Server(http=http, why_v2=support.reason, weights=weights)


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _questions(args: argparse.Namespace) -> Iterator[str]:
    """The user's messages: the one prompt, or one per line until an empty line or end of input."""
    if args.prompt is not None:
        yield args.prompt
        return
    if not (args.interactive or sys.stdin.isatty()):
        yield sys.stdin.read().strip() or DEFAULT_PROMPT
        return
    while True:
        try:
            text = input("> ") if sys.stdin.isatty() else sys.stdin.readline()
        except EOFError:
            return
        text = text.strip()
        if not text:
            return
        yield text


def run(args: argparse.Namespace) -> int:
    from wizard.conversation import Conversation
    from wizard.errors import UsageError
    from wizard.redact import redact_url

    if args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    server = _server(args)
    conversation = Conversation(system=args.system)
    reply: Reply
    # Notes about the route go with a conversation; a one-shot prompt prints only the reply and its speed.
    conversing = args.prompt is None and (args.interactive or sys.stdin.isatty())
    if server.openai:
        reply = _openai_replies(server, args)
        where = f"{server.openai} (chat completions)"
    else:
        reply = _v2_replies(server, args, _say if conversing else lambda text: None)
        where = f"{server.http} (/v2 generate_stream)"
    if conversing:
        _say(f"chatting with {args.model} at {redact_url(where)}; {RESET} starts again, an empty line or Ctrl-D ends")
    for text in _questions(args):
        if text == RESET:
            conversation.reset()
            _say("(conversation reset)")
            continue
        answer, stats = reply(conversation, text)
        conversation.answer(answer)
        _say(f"[{stats}]")
    return 0


# One reply to the conversation so far plus a new message: its text and its tokens-per-second line.
Reply = Callable[["Conversation", str], tuple[str, str]]


def _openai_replies(server: Server, args: argparse.Namespace) -> Reply:
    from wizard.errors import ModelwizError
    from wizard.openai_client import OpenAIClient

    assert server.openai is not None
    client = OpenAIClient(server.openai)
    if args.model not in {m.id for m in client.models()}:
        raise ModelwizError(
            f"model {args.model} is not served at {client.base_url}/v1/models",
            hint="check `modelwiz status`, then `modelwiz up`",
        )

    def reply(conversation: Conversation, text: str) -> tuple[str, str]:
        stream = client.chat_stream(
            args.model, conversation.ask(text), max_tokens=args.max_tokens, temperature=args.temperature
        )
        for piece in stream:
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        assert stream.stats is not None  # set when the stream ended with [DONE]
        return stream.text, stream.stats.summary()

    return reply


def _v2_replies(server: Server, args: argparse.Namespace, note: Callable[[str], None]) -> Reply:
    from wizard.chat_template import load_chat_template
    from wizard.errors import ModelwizError, UsageError
    from wizard.triton_http import TritonHttp, TritonHttpError, generate_body

    try:
        http = TritonHttp(server.http)
    except ValueError as error:
        raise UsageError(str(error), hint="use a URL such as http://127.0.0.1:8000") from error
    if not http.live():
        raise ModelwizError(f"Triton does not answer at {server.http}", hint="start it with `modelwiz up`")
    if not http.model_ready(args.model):
        raise ModelwizError(
            f"model {args.model} is not loaded at {server.http}", hint="check `modelwiz status`, then `modelwiz up`"
        )
    template: ChatTemplate | None = load_chat_template(server.weights) if server.weights else None
    if server.why_v2:
        note(f"{args.model}: {server.why_v2}")
    if template is not None:
        note(f"{args.model}: its own chat template over /v2 ({template.origin.name})")
    else:
        note(f"{args.model}: no chat template here, so each message goes as raw text without the history")

    def reply(conversation: Conversation, text: str) -> tuple[str, str]:
        messages = conversation.ask(text)
        prompt = template.render(messages) if template is not None else text
        body = generate_body(prompt, max_tokens=args.max_tokens, temperature=args.temperature)
        started, pieces = time.monotonic(), []
        try:
            for event in http.generate_stream(args.model, body):
                if not isinstance(event, dict) or not isinstance(event.get("text_output"), str):
                    raise ModelwizError(
                        f"{server.http} sent a generate_stream event without text_output",
                        hint="point --url at Triton's HTTP port",
                    )
                pieces.append(event["text_output"])
                sys.stdout.write(event["text_output"])
                sys.stdout.flush()
        except TritonHttpError as error:
            raise ModelwizError(
                f"{args.model} failed to answer: {error}", hint=f"see `podman logs {args.name}`"
            ) from error
        sys.stdout.write("\n")
        seconds = time.monotonic() - started
        rate = len(pieces) / seconds if seconds > 0 else 0.0
        return "".join(pieces), f"~{len(pieces)} tokens in {seconds:.1f} s, ~{rate:.1f} tokens/s"

    return reply
