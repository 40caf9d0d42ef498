"""`modelwiz download`: reserved; its issue delivers it."""

from __future__ import annotations

import argparse

from wizard.errors import ModelwizError

HELP = "(not available yet)"


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("rest", nargs=argparse.REMAINDER, help=argparse.SUPPRESS)


def run(args: argparse.Namespace) -> int:
    raise ModelwizError("`modelwiz download` is not available in this build yet")
