"""`modelwiz login`: save a Hugging Face token where huggingface_hub keeps it, after checking it."""

from __future__ import annotations

import argparse
import sys

DESCRIPTION = (
    "Paste a Hugging Face access token (https://huggingface.co/settings/tokens); it is checked with "
    "the Hub and saved where huggingface_hub keeps it (the same place as `hf auth login`). The token "
    "is never taken as an argument, so it stays out of shell history. Pipe it on stdin to script it."
)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--status", action="store_true", help="show whether and as whom you are logged in")


def run(args: argparse.Namespace) -> int:
    from wizard.errors import UsageError
    from wizard.hub import auth_status, save_token

    if args.status:
        status = auth_status()
        print(status.message)
        return 0 if status.logged_in else 1
    if sys.stdin is None:
        raise UsageError("no input to read the token from", hint="pipe it: `modelwiz login < token-file`")
    if sys.stdin.isatty():
        import getpass

        print("Create a token at https://huggingface.co/settings/tokens (read access is enough).", file=sys.stderr)
        try:
            token = getpass.getpass("Hugging Face token (input hidden): ")
        except EOFError:
            token = ""
    else:
        token = sys.stdin.readline()
    user = save_token(token)
    print(f"logged in to Hugging Face as {user}; the token is saved for huggingface_hub (and modelwiz)")
    from wizard.hub import token_source

    if token_source() == "env":
        print("note: HF_TOKEN is set in this environment and takes precedence over the saved token", file=sys.stderr)
    return 0
