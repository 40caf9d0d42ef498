"""The `modelwiz` console script: arguments, subcommands, and the one place errors become exit codes.

Each subcommand lives in `wizard/commands/<name>.py` and provides `HELP`, `add_arguments(parser)`
and `run(args) -> int`. Command modules import heavy libraries inside `run`, so `--help` and
`--version` stay fast. Exit codes: 0 success, 1 the operation failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence
from typing import NoReturn

from wizard import __version__
from wizard.errors import ModelwizError, UsageError
from wizard.gpus import DRIVER_ENV, check_driver_version

PROG = "modelwiz"

# Subcommands, in the order `--help` lists them. The names are a contract: keep them.
COMMANDS = (
    "gpus",
    "plan",
    "download",
    "login",
    "add",
    "remove",
    "status",
    "up",
    "down",
    "chat",
    "export",
)


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage in one line and exits 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def _global_options(parser: argparse.ArgumentParser, *, top: bool) -> None:
    default = None if top else argparse.SUPPRESS
    parser.add_argument(
        "--gpus",
        metavar="SPEC",
        default=default,
        help="plan for described GPUs instead of asking NVML, e.g. 2xH100-80GB, A100-40GB,L4 or "
        "24GiB (also $MODELWIZ_GPUS)",
    )
    parser.add_argument(
        "--driver",
        metavar="VERSION",
        default=default,
        help="with --gpus: the NVIDIA driver of that machine (e.g. 570.124.06), so the Triton image "
        "is chosen for it (also $MODELWIZ_DRIVER)",
    )
    parser.add_argument(
        "--debug",
        action="store_true",
        default=False if top else argparse.SUPPRESS,
        help="show tracebacks and debug logging",
    )


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description="Set up NVIDIA Triton Inference Server with the vLLM backend: find the GPUs, "
        "plan and download Hugging Face models, and launch. Run without a command for the "
        "interactive wizard.",
    )
    parser.add_argument("--version", action="version", version=f"{PROG} {__version__}")
    parser.add_argument(
        "--plain",
        action="store_true",
        help="use plain prompts instead of the full-screen wizard",
    )
    _global_options(parser, top=True)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name in COMMANDS:
        module = importlib.import_module(f"wizard.commands.{name}")
        cmd = sub.add_parser(name, help=module.HELP, description=getattr(module, "DESCRIPTION", module.HELP))
        _global_options(cmd, top=False)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def _report(error: ModelwizError) -> int:
    print(f"{PROG}: error: {error.one_line()}", file=sys.stderr)
    return error.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.gpus is None:
        args.gpus = os.environ.get("MODELWIZ_GPUS") or None
    import logging

    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    else:
        # Libraries' retry chatter ("Retrying in 2s [Retry 1/5]") is not for the terminal: modelwiz
        # reports the outcome in one line.
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    try:
        if args.driver is not None:
            # Read where the inventory is loaded (wizard.gpus.load_inventory), like $MODELWIZ_GPUS.
            os.environ[DRIVER_ENV] = check_driver_version(args.driver)
        if args.command is None:
            from wizard.interactive import run_interactive

            return run_interactive(args)
        return int(args.run(args) or 0)
    except ModelwizError as error:
        if args.debug:
            raise
        return _report(error)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except EOFError:  # Ctrl-D at a question: an answer that never came
        print(f"{PROG}: cancelled (no answer)", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # stdout closed early (`modelwiz gpus | head`): not an error worth a traceback.
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
        return 1
    except Exception as error:  # a bug: say so in one line, keep the traceback for --debug
        if args.debug:
            raise
        return _report(
            ModelwizError(
                f"unexpected {type(error).__name__}: {error}",
                hint="run again with --debug for the traceback, and report it",
            )
        )


__all__ = ["UsageError", "build_parser", "main"]
