"""`modelwiz chat NAME`: a conversation with a loaded model, streamed, with tokens per second.

Over the OpenAI-compatible API (`/v1/chat/completions`) when the server runs Triton's OpenAI
frontend and the model chats there with its own template; otherwise over Triton's
`/v2/models/NAME/generate_stream`, with the model's chat template (from its weights folder in the
repository) rendered here. `/reset` starts the conversation again; an empty line or Ctrl-D ends.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

from wizard.chat_session import DEFAULT_MAX_TOKENS, DEFAULT_TEMPERATURE, ChatSession, ChatTarget, chat_target
from wizard.container import DEFAULT_HTTP_URL
from wizard.conversation import RESET
from wizard.errors import ModelwizError, UsageError
from wizard.redact import redact_url

DEFAULT_PROMPT = "In one paragraph, what is NVIDIA Triton Inference Server?"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wizard.commands.up import add_name_argument

    parser.add_argument("model", metavar="NAME", help="the Triton model name")
    parser.add_argument("--prompt", help="one prompt, answered once (default: ask on a terminal, else read stdin)")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=DEFAULT_MAX_TOKENS,
        metavar="N",
        help=f"longest reply in tokens (default {DEFAULT_MAX_TOKENS}; vLLM alone would stop at 16)",
    )
    parser.add_argument("--temperature", type=float, default=DEFAULT_TEMPERATURE)
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


def _target(args: argparse.Namespace) -> ChatTarget:
    """Where to talk to the model: the flags, else the modelwiz container's labels."""
    from wizard import launcher, podman_conn

    if args.url or args.openai_url:
        return ChatTarget(http=args.url or DEFAULT_HTTP_URL, openai=args.openai_url)
    try:
        client = podman_conn.connect()
    except ModelwizError:
        return ChatTarget(http=DEFAULT_HTTP_URL)
    try:
        state = launcher.status(client, args.name)
    finally:
        client.close()
    if not state.exists or state.state != "running":
        raise ModelwizError(f"Triton is not running ({args.name}: {state.state})", hint="start it with `modelwiz up`")
    return chat_target(
        args.model,
        state.url or DEFAULT_HTTP_URL,
        openai=state.openai_url,
        repository=Path(state.repository) if state.repository else None,
        mount_point=state.mount_point,
        chat_model=state.chat_model,
    )


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
    if args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    session = ChatSession(
        args.model,
        _target(args),
        system=args.system,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        log_hint=f"see `podman logs {args.name}`",
    )
    # Notes about the route go with a conversation; a one-shot prompt prints only the reply and its speed.
    if args.prompt is None and (args.interactive or sys.stdin.isatty()):
        for note in session.notes:
            _say(note)
        where = redact_url(session.where)
        _say(f"chatting with {args.model} at {where}; {RESET} starts again, an empty line or Ctrl-D ends")
    for text in _questions(args):
        if text == RESET:
            session.reset()
            _say("(conversation reset)")
            continue
        for piece in session.send(text):
            sys.stdout.write(piece)
            sys.stdout.flush()
        sys.stdout.write("\n")
        _say(f"[{session.stats}]")
    return 0
