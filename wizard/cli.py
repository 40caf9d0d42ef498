"""The `modelwiz` console script: arguments, subcommands, and the one place errors become exit codes.

Each subcommand lives in `wizard/commands/<name>.py` and provides `HELP`, `add_arguments(parser)`
and `run(args) -> int`. Command modules import heavy libraries inside `run`, so `--help` and
`--version` stay fast. Exit codes: 0 success, 1 the operation failed, 2 bad usage or bad input.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
import warnings
from collections.abc import Sequence
from typing import NoReturn

from wizard import __version__
from wizard.errors import ModelwizError, UsageError
from wizard.gpus import DRIVER_ENV, check_driver_version
from wizard.redact import redact_text

PROG = "modelwiz"
HF_VERBOSITY_ENV = "HF_HUB_VERBOSITY"  # read by huggingface_hub when it is imported

# Subcommands, in the order `--help` lists them, with their one-line help. The names are a
# contract: keep them. Each lives in `wizard/commands/<name>.py` (`add_arguments`, `run`, and an
# optional longer `DESCRIPTION`), imported only when its name is on the command line, so that the
# wizard (no command) paints without importing every command's core modules.
COMMANDS: dict[str, str] = {
    "gpus": "list the GPUs (NVML, or --gpus SPEC) as a table or --json",
    "plan": "plan memory for models: tensor parallel size, context, gpu_memory_utilization",
    "download": "download a Hugging Face model (only what vLLM needs) into a folder, resumably",
    "login": "save a Hugging Face access token (hidden input, or piped on stdin); --status shows who you are",
    "add": "add models to the Triton model repository (plans all models together)",
    "remove": "take a model out of the model repository",
    "status": "list the model repository's models with their plans and state",
    "up": "start Triton (podman, GPUs through CDI) and load the repository's models",
    "down": "stop and remove the Triton container",
    "chat": "chat with a model: a streamed conversation, or one prompt",
    "export": "write Kubernetes manifests or a systemd unit for the repository's Triton server",
    "verify": "check downloaded weights against the Hub's hashes recorded when they were fetched",
}


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


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The parser for `argv` (default: this process's arguments): every command is listed, and
    the commands named in `argv` get their arguments."""
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
    named = set(argv if argv is not None else sys.argv[1:])
    for name, help_text in COMMANDS.items():
        if name not in named:  # listed by --help; its arguments are only needed when it runs
            sub.add_parser(name, help=help_text)
            continue
        module = importlib.import_module(f"wizard.commands.{name}")
        cmd = sub.add_parser(name, help=help_text, description=getattr(module, "DESCRIPTION", help_text))
        _global_options(cmd, top=False)
        module.add_arguments(cmd)
        cmd.set_defaults(run=module.run)
    return parser


def _report(error: ModelwizError) -> int:
    print(f"{PROG}: error: {redact_text(error.one_line())}", file=sys.stderr)
    return error.exit_code


_SHORT_PATH = 160  # a path longer than this (a symlink loop's) is cut in messages


def _short(path: object) -> str:
    text = str(path)
    return text if len(text) <= _SHORT_PATH else f"{text[:_SHORT_PATH]}..."


def _raised_in(error: BaseException, package: str) -> bool:
    """Whether `error` was raised from inside `package` (its traceback passes through it)."""
    tb = error.__traceback__
    while tb is not None:
        module = str(tb.tb_frame.f_globals.get("__name__", ""))
        if module == package or module.startswith(package + "."):
            return True
        tb = tb.tb_next
    return False


def explain(error: Exception) -> ModelwizError | None:
    """Known failures that reach the top without a modelwiz message: their cause and fix."""
    podman_errors = sys.modules.get("podman.errors")
    api_error = podman_errors is not None and isinstance(error, podman_errors.APIError)
    garbled = isinstance(error, (ValueError, KeyError, TypeError)) and _raised_in(error, "podman")
    if api_error or garbled:
        return ModelwizError(
            f"the podman service answered something that is not the podman API ({_short(error)})",
            hint="check that CONTAINER_HOST points at a podman socket, or restart the service"
            " (`systemctl --user restart podman.socket`)",
        )
    if isinstance(error, RecursionError):
        return UsageError(
            "a file modelwiz reads (config.json, modelwiz.toml) is nested too deeply to be real",
            hint="fix or replace the file (see --debug for which one)",
        )
    if isinstance(error, OSError) and error.errno is not None:
        where = _short(error.filename) if error.filename else "a file"
        if error.errno == errno.ELOOP:
            return UsageError(
                f"too many levels of symbolic links at {where}",
                hint="a link points back into its own folder: remove it, then run again",
            )
        if error.errno in (errno.ENOSPC, errno.EDQUOT):
            return ModelwizError(f"the disk is full ({where})", hint="free some space, then run again")
        if error.errno in (errno.EACCES, errno.EPERM, errno.EROFS):
            return ModelwizError(
                f"cannot use {where}: {error.strerror}",
                hint="check its permissions, or choose a folder you can write to",
            )
    return None


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser(argv)
    args = parser.parse_args(argv)
    if args.gpus is None:
        args.gpus = os.environ.get("MODELWIZ_GPUS") or None
    import logging

    if args.debug:
        logging.basicConfig(level=logging.DEBUG, format="%(asctime)s %(name)s %(message)s")
    else:
        # Libraries' retry chatter ("Retrying in 2s [Retry 1/5]") is not for the terminal: modelwiz
        # reports the outcome in one line. huggingface_hub sets its logger's level when it is
        # imported (utils/logging.py, _configure_library_root_logger, from HF_HUB_VERBOSITY), which
        # happens later, so the level is given there too.
        os.environ.setdefault(HF_VERBOSITY_ENV, "error")
        logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
        # Its warnings.warn notes too ("Not enough free disk space..."): the error that follows says it.
        warnings.filterwarnings("ignore", module=r"huggingface_hub(\.|$)")
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
        known = explain(error)
        if known is not None:
            return _report(known)
        return _report(
            ModelwizError(
                f"unexpected {type(error).__name__}: {error}",
                hint="run again with --debug for the traceback, and report it",
            )
        )


__all__ = ["UsageError", "build_parser", "main"]
