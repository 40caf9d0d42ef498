"""`modelwiz chat NAME`: send a prompt to a loaded model and stream the reply (generate_stream)."""

from __future__ import annotations

import argparse
import sys

HELP = "send a test prompt to a model and stream the reply"
DEFAULT_PROMPT = "In one paragraph, what is NVIDIA Triton Inference Server?"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wizard.commands.up import add_name_argument

    parser.add_argument("model", metavar="NAME", help="the Triton model name")
    parser.add_argument("--prompt", help="the prompt (default: ask on a terminal, else read stdin)")
    parser.add_argument(
        "--max-tokens",
        type=int,
        default=256,
        metavar="N",
        help="longest reply in tokens (default 256; vLLM alone would stop at 16)",
    )
    parser.add_argument("--temperature", type=float, default=0.7)
    parser.add_argument(
        "--url", help="Triton's HTTP URL (default: read from the container, else http://127.0.0.1:8000)"
    )
    add_name_argument(parser)


def _url(args: argparse.Namespace) -> str:
    if args.url:
        return args.url
    from wizard import launcher, podman_conn
    from wizard.errors import ModelwizError

    try:
        client = podman_conn.connect()
    except ModelwizError:
        return "http://127.0.0.1:8000"
    try:
        state = launcher.status(client, args.name)
    finally:
        client.close()
    if not state.exists or state.state != "running":
        raise ModelwizError(f"Triton is not running ({args.name}: {state.state})", hint="start it with `modelwiz up`")
    return state.url or "http://127.0.0.1:8000"


def _stream(http, model: str, body: dict) -> None:
    for event in http.generate_stream(model, body):
        sys.stdout.write(str(event.get("text_output", "")))
        sys.stdout.flush()
    sys.stdout.write("\n")


def run(args: argparse.Namespace) -> int:
    from wizard.errors import ModelwizError, UsageError
    from wizard.redact import redact_url
    from wizard.triton_http import TritonHttp, TritonHttpError, generate_body

    if args.max_tokens < 1:
        raise UsageError("--max-tokens must be at least 1")
    url = _url(args)
    try:
        http = TritonHttp(url)
    except ValueError as error:
        raise UsageError(str(error), hint="use a URL such as http://127.0.0.1:8000") from error
    if not http.live():
        raise ModelwizError(f"Triton does not answer at {url}", hint="start it with `modelwiz up`")
    if not http.model_ready(args.model):
        raise ModelwizError(
            f"model {args.model} is not loaded at {url}", hint="check `modelwiz status`, then `modelwiz up`"
        )
    interactive = args.prompt is None and sys.stdin.isatty()
    try:
        if args.prompt is not None or not interactive:
            prompt = args.prompt if args.prompt is not None else sys.stdin.read().strip() or DEFAULT_PROMPT
            _stream(http, args.model, generate_body(prompt, max_tokens=args.max_tokens, temperature=args.temperature))
            return 0
        print(f"chatting with {args.model} at {redact_url(url)}; an empty line or Ctrl-D ends", file=sys.stderr)
        while True:
            try:
                prompt = input("> ").strip()
            except EOFError:
                return 0
            if not prompt:
                return 0
            _stream(http, args.model, generate_body(prompt, max_tokens=args.max_tokens, temperature=args.temperature))
    except TritonHttpError as error:
        raise ModelwizError(
            f"{args.model} failed to answer: {error}", hint="see `podman logs " + args.name + "`"
        ) from error
