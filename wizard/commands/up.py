"""`modelwiz up`: start Triton for the repository's models and wait until every one is ready."""

from __future__ import annotations

import argparse
import os
import sys
import time
from dataclasses import replace
from pathlib import Path

HELP = "start Triton (podman, GPUs through CDI) and load the repository's models"
DESCRIPTION = (
    "Start NVIDIA Triton Inference Server in podman with the repository mounted read-only and the "
    "planned GPUs passed through CDI, then load the models one at a time and wait until each is "
    "ready. A running container with the same settings gets only the new models loaded."
)


def default_repository() -> Path:
    return Path(os.environ.get("MODEL_REPOSITORY") or Path.home() / "models")


def add_repository_argument(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--repository",
        metavar="DIR",
        type=Path,
        default=None,
        help="the model repository (default: $MODEL_REPOSITORY or ~/models)",
    )


def add_name_argument(parser: argparse.ArgumentParser) -> None:
    from wizard.container import DEFAULT_NAME

    parser.add_argument("--name", default=DEFAULT_NAME, help=f"container name (default {DEFAULT_NAME})")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    from wizard.container import GRPC_PORT, HTTP_PORT, METRICS_PORT

    add_repository_argument(parser)
    parser.add_argument("--image", metavar="REF", help="container image to run, used as given "
                        "(default: the newest Triton vLLM image this driver supports)")
    add_name_argument(parser)
    parser.add_argument("--listen", metavar="ADDR", default="127.0.0.1",
                        help="host address to publish the ports on (default 127.0.0.1; 0.0.0.0 exposes them)")
    parser.add_argument("--http-port", type=int, default=HTTP_PORT, metavar="PORT")
    parser.add_argument("--grpc-port", type=int, default=GRPC_PORT, metavar="PORT")
    parser.add_argument("--metrics-port", type=int, default=METRICS_PORT, metavar="PORT")
    parser.add_argument("--yes", "-y", action="store_true",
                        help="recreate a running container whose settings differ without asking")
    parser.add_argument("--logs", action="store_true", help="print the container's log lines while waiting")
    parser.add_argument("--timeout", type=float, default=900.0, metavar="SECONDS",
                        help="how long to wait for Triton to come up (default 900)")


def _driver_version(gpus_spec: str | None, say) -> str | None:
    from wizard.errors import ModelwizError
    from wizard.gpus import load_inventory

    try:
        return load_inventory(gpus_spec).driver_version
    except ModelwizError as error:
        say(f"note: cannot read the NVIDIA driver version ({error.message}); not checking it")
        return None


class _ProgressPrinter:
    """Pull progress as a line every few seconds (plain output; the TUI draws its own)."""

    def __init__(self, stream) -> None:
        self._stream = stream
        self._last = 0.0

    def __call__(self, event) -> None:
        from wizard.units import format_bytes, format_rate

        now = time.monotonic()
        if not event.finished and now - self._last < 2.0:
            return
        self._last = now
        total = f" of {format_bytes(event.total_bytes)}" if event.total_bytes else ""
        layers = f", {event.files_done}/{event.files_total} layers" if event.files_total else ""
        rate = f", {format_rate(event.rate_bytes_per_s)}" if event.rate_bytes_per_s else ""
        print(f"{event.task}: {format_bytes(event.done_bytes)}{total}{layers}{rate}", file=self._stream)


def _confirm(assume_yes: bool):
    def ask(question: str) -> bool:
        if assume_yes:
            return True
        if not (sys.stdin.isatty() and sys.stdout.isatty()):
            return False
        return input(f"{question} [y/N] ").strip().lower() in ("y", "yes")

    return ask


def run(args: argparse.Namespace) -> int:
    from wizard import launcher, podman_conn, preflight
    from wizard.container import default_ulimits, launch_spec_for
    from wizard.launch_inputs import read_launch_inputs
    from wizard.launcher import LaunchFailed
    from wizard.preflight import PreflightFailed

    err = sys.stderr
    say = lambda text: print(text, file=err)  # noqa: E731 - progress goes to stderr, results to stdout
    repository = (args.repository or default_repository()).expanduser()
    inputs = read_launch_inputs(repository)
    driver = _driver_version(args.gpus, say)
    image = preflight.choose_image(args.image or inputs.image, driver)
    spec = launch_spec_for(
        repository,
        models=inputs.models,
        devices=inputs.devices,
        image=image,
        mount_point=inputs.mount_point,
        name=args.name,
        listen=args.listen,
        http_port=args.http_port,
        grpc_port=args.grpc_port,
        metrics_port=args.metrics_port,
        selinux_enforcing=preflight.selinux_enforcing(),
    )
    client = podman_conn.connect()
    try:
        spec = replace(
            spec,
            ulimits=default_ulimits(rootless=podman_conn.is_rootless(client)),
            selinux_label_disable=spec.selinux_label_disable or podman_conn.selinux_enabled(client),
        )
        try:
            result = launcher.up(
                spec,
                client,
                driver_version=driver,
                on_event=lambda e: say(("warning: " if e.stage == "warning" else "") + e.message),
                on_progress=_ProgressPrinter(err),
                on_log=(lambda line: say(f"  | {line}")) if args.logs else None,
                confirm=_confirm(args.yes),
                live_timeout_s=args.timeout,
            )
        except PreflightFailed as error:
            for problem in error.problems[1:]:
                say(f"preflight: {problem.one_line()}")
            raise
        except LaunchFailed as error:
            if error.log_tail and not args.logs:
                say(f"last lines of the {spec.name} log:")
                for line in error.log_tail:
                    say(f"  | {line}")
            for advice in error.advice[1:]:
                say(f"also: {advice}")
            raise
    finally:
        client.close()
    _print_success(spec, result)
    return 0


def _print_success(spec, result) -> None:
    from wizard.launcher import curl_example

    host = spec.http_url.split("//", 1)[1].rsplit(":", 1)[0]
    verb = "kept running" if result.reused else "started"
    print(f"Triton {verb} as {spec.name}; models ready: {', '.join(spec.models)}")
    print(f"  HTTP     {spec.http_url}")
    print(f"  gRPC     {host}:{spec.grpc_port}")
    print(f"  metrics  http://{host}:{spec.metrics_port}/metrics")
    first = spec.models[0]
    print("Try it:")
    print(f"  {curl_example(spec.http_url, first)}")
    print(f"  modelwiz chat {first}" + (f" --name {spec.name}" if spec.name != "modelwiz-triton" else ""))
