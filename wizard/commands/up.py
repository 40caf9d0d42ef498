"""`modelwiz up`: start Triton for the repository's models and wait until every one is ready."""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING

from wizard.container import DEFAULT_NAME

if TYPE_CHECKING:
    from wizard.container import LaunchSpec
    from wizard.launcher import UpResult

DESCRIPTION = (
    "Start NVIDIA Triton Inference Server in podman with the repository mounted read-only and the "
    "planned GPUs passed through CDI, then load the models one at a time and wait until each is "
    "ready. A running container with the same settings gets only the new models loaded."
)


def add_name_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--name", default=DEFAULT_NAME, help=f"container name (default {DEFAULT_NAME})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wizard.commands._repo_args import add_repository_argument
    from wizard.serve_options import add_serve_arguments

    add_repository_argument(parser)
    add_serve_arguments(parser, "up")
    parser.add_argument(
        "--yes", "-y", action="store_true", help="recreate a running container whose settings differ without asking"
    )
    parser.add_argument("--logs", action="store_true", help="print the container's log lines while waiting")


def _confirm(assume_yes: bool):
    def ask(question: str) -> bool:
        if assume_yes:
            return True
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return False
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    return ask


def run(args: argparse.Namespace) -> int:
    from wizard.launcher import LaunchFailed
    from wizard.preflight import PreflightFailed
    from wizard.progress_text import progress_printer
    from wizard.repository import resolve_repository
    from wizard.serve import Reporter, ServeOptions, driver_version, start_server

    err = sys.stderr
    say = lambda text: print(text, file=err)  # noqa: E731 - progress goes to stderr, results to stdout
    repository = resolve_repository(args.repository)
    options = ServeOptions.from_args(args)
    printer = progress_printer(err)
    try:
        serving = start_server(
            repository,
            driver=driver_version(args.gpus, lambda text: say(f"warning: {text}")),
            options=options,
            reporter=Reporter(
                on_event=lambda e: say(("warning: " if e.stage == "warning" else "") + e.message),
                on_progress=printer,
                on_log=(lambda line: say(f"  | {line}")) if args.logs else None,
                confirm=_confirm(args.yes),
            ),
        )
    except PreflightFailed as error:
        for problem in error.problems[1:]:
            say(f"preflight: {problem.one_line()}")
        raise
    except LaunchFailed as error:
        if error.log_tail and not args.logs:
            say("last lines of the Triton container's log:")
            for line in error.log_tail:
                say(f"  | {line}")
        for advice in error.advice[1:]:
            say(f"also: {advice}")
        raise
    finally:
        printer.close()
    print_success(serving.spec, serving.result)
    return 0


def print_success(spec: LaunchSpec, result: UpResult) -> None:
    from wizard.endpoints import render_endpoints, spec_endpoints

    verb = "kept running" if result.reused else "started"
    print(f"Triton {verb} as {spec.name}; models ready: {', '.join(spec.models)}")
    for line in render_endpoints(spec_endpoints(spec)):
        print(line)
    first = spec.models[0]
    print("Try it:")
    print(f"  modelwiz chat {first}" + (f" --name {spec.name}" if spec.name != DEFAULT_NAME else ""))
