"""Plain `modelwiz`: the full-screen wizard on a terminal, plain prompts otherwise.

- stdin and stdout are terminals, no --plain: the Textual app (`screens.app.run_app`).
- --plain, or one of them is not a terminal but the process still has one (/dev/tty): questionary
  prompts and plain progress lines (`wizard.plain.run_plain`).
- no terminal at all: nothing can be asked; exit 2 pointing to the non-interactive command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from wizard.errors import UsageError

TTY_DEVICE = "/dev/tty"


def has_terminal() -> bool:
    """Both real streams are terminals (checked before Textual or questionary start)."""
    stdin, stdout = sys.__stdin__, sys.__stdout__
    return bool(stdin and stdout and stdin.isatty() and stdout.isatty())


def can_ask() -> bool:
    """Questions can be answered: stdin is a terminal, or the process has a controlling one."""
    stdin = sys.__stdin__
    if stdin is not None and stdin.isatty():
        return True
    try:
        fd = os.open(TTY_DEVICE, os.O_RDWR)
    except OSError:
        return False
    os.close(fd)
    return True


def prompt_streams() -> dict[str, Any]:
    """input/output for prompt_toolkit (questionary): none when both standard streams are
    terminals, else the controlling terminal, so piped output still gets plain lines."""
    if has_terminal():
        return {}
    from prompt_toolkit.input import create_input
    from prompt_toolkit.output import create_output

    tty = open(TTY_DEVICE, "r+")  # noqa: SIM115 - lives as long as the process
    return {"input": create_input(tty), "output": create_output(tty)}


def run_interactive(args: argparse.Namespace) -> int:
    full_screen = has_terminal()
    if not full_screen and not can_ask():
        raise UsageError(
            "modelwiz needs an interactive terminal for the wizard",
            hint="to set up without questions, run `modelwiz add MODEL --yes`",
        )
    if args.plain or not full_screen:
        from wizard.plain import run_plain

        return run_plain(args)
    from screens.app import run_app

    return run_app(args)
