"""Options and prompts shared by `add`, `remove` and `status` (the repository they work on)."""

from __future__ import annotations

import argparse
import sys


def add_repository_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        metavar="DIR",
        help="the Triton model repository (default: $MODEL_REPOSITORY, else the one used last)",
    )


def interactive() -> bool:
    return bool(sys.stdin and sys.stdin.isatty() and sys.stderr.isatty())


def ask_yes_no(question: str) -> bool:
    """A plain [y/N] question on the terminal (callers check `interactive()` first)."""
    answer = input(f"{question} [y/N] ").strip().lower()
    return answer in ("y", "yes")


def ask_repository() -> str | None:
    if not interactive():
        return None
    answer = input("Model repository folder (it is remembered): ").strip()
    return answer or None


def port_number(text: str) -> int:
    """argparse type for a TCP port (1-65535)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port number") from None
    if not 1 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"{value} is not a port number (1-65535)")
    return value
