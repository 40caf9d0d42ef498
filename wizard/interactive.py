"""Plain `modelwiz`: the full-screen wizard on a terminal, plain prompts otherwise."""

from __future__ import annotations

import argparse
import sys

from wizard.errors import UsageError


def has_terminal() -> bool:
    """Both real streams are terminals (checked before Textual or questionary start)."""
    stdin, stdout = sys.__stdin__, sys.__stdout__
    return bool(stdin and stdout and stdin.isatty() and stdout.isatty())


def run_interactive(args: argparse.Namespace) -> int:
    if not has_terminal():
        raise UsageError(
            "modelwiz needs an interactive terminal for the wizard",
            hint="to set up without questions, run `modelwiz add MODEL --yes`",
        )
    if args.plain:
        from wizard.plain import run_plain

        return run_plain(args)
    from screens.app import run_app

    return run_app(args)
