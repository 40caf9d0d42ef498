"""Plain `modelwiz`: the full-screen wizard on a terminal, plain prompts otherwise.

- stdin and stdout are terminals that can draw (TERM is not `dumb`), no --plain: the Textual app
  (`screens.app.run_app`).
- --plain, TERM=dumb, or stdout is not a terminal (piped to a log) while stdin is one: questionary
  prompts on the terminal and plain progress lines (`wizard.plain.run_plain`).
- stdin is not a terminal (`modelwiz < /dev/null`, a pipe, no terminal at all): nothing can be
  answered; exit 2 pointing to the non-interactive command.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from wizard.errors import UsageError

TTY_DEVICE = "/dev/tty"
# Terminals that cannot position the cursor (Emacs shell, CI log viewers): no full-screen UI.
DUMB_TERMS = frozenset({"dumb", "unknown"})


def has_terminal() -> bool:
    """Both real streams are terminals (checked before Textual or questionary start)."""
    stdin, stdout = sys.__stdin__, sys.__stdout__
    return bool(stdin and stdout and stdin.isatty() and stdout.isatty())


def can_ask() -> bool:
    """Questions can be answered: stdin is a terminal (answers typed elsewhere would be a guess)."""
    stdin = sys.__stdin__
    return bool(stdin and stdin.isatty())


def can_draw() -> bool:
    """The terminal can show a full-screen UI (TERM names one that positions the cursor)."""
    return os.environ.get("TERM", "") not in DUMB_TERMS


def prompt_streams() -> dict[str, Any]:
    """output for prompt_toolkit (questionary): none when stdout is a terminal, else the controlling
    terminal (write-only: a tty is not seekable, so it cannot be opened "r+" in text mode), so
    piped output still gets plain lines. Questions are read from stdin, a terminal (`can_ask`)."""
    stdout = sys.__stdout__
    if stdout is not None and stdout.isatty():
        return {}
    from prompt_toolkit.output import create_output

    try:
        tty = open(TTY_DEVICE, "w")  # noqa: SIM115 - lives as long as the process
    except OSError:
        return {}  # no controlling terminal: questions go to stdout with everything else
    return {"output": create_output(tty)}


def run_interactive(args: argparse.Namespace) -> int:
    full_screen = has_terminal() and can_draw()
    if not can_ask():
        raise UsageError(
            "modelwiz needs an interactive terminal for the wizard",
            hint="to set up without questions, run `modelwiz add MODEL --yes`",
        )
    if args.plain or not full_screen:
        from wizard.plain import run_plain

        return run_plain(args)
    from screens.app import run_app

    return run_app(args)
