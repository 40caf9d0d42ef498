"""How the server runs: `ServeOptions`, declared once, its command-line flags, and its layers.

Each field carries its flag and its help text (per command, where `up`, `add` and `export` say
it differently), and `add_serve_arguments` builds the argparse flags from them, the way vLLM's
`EngineArgs.add_cli_args` builds its flags from `get_kwargs` over a dataclass
(vllm/engine/arg_utils.py).

The options are merged from four layers, each one overriding the ones before it where it sets
a value (None: not set):

    defaults  <  repository manifest  <  the running container (its labels)  <  flags

- defaults: `DEFAULTS` (127.0.0.1, ports 8000-8002, container `modelwiz-triton`; no image, so
  the newest image this driver runs is chosen);
- the repository manifest: the image the model.json files were written for;
- the running container: the modelwiz container already serving this repository, so a re-run
  keeps its name, ports, address and image;
- flags: what the user typed.
"""

from __future__ import annotations

import argparse
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, Literal

from wizard.commands._repo_args import port_number
from wizard.container import (
    DEFAULT_LISTEN,
    DEFAULT_NAME,
    GRPC_PORT,
    HTTP_PORT,
    LABEL_IMAGE,
    LABEL_MANAGED,
    LABEL_PORTS,
    LABEL_REPOSITORY,
    METRICS_PORT,
    parse_ports_label,
)

Command = Literal["up", "add", "export-kube", "export-systemd"]
Layer = Literal["defaults", "manifest", "running", "flags"]
LAYER_ORDER: tuple[Layer, ...] = ("defaults", "manifest", "running", "flags")

DEFAULT_LIVE_TIMEOUT_S = 900.0

SERVE_COMMAND = "serve_command"  # the namespace attribute naming which command's serve flags were parsed
_KEPT = "default: as the server already running for this repository, else %s"
_AS_UP = "as given to `modelwiz up`"


@dataclass(frozen=True)
class Flag:
    """How one ServeOptions field appears on the command line of each command that takes it."""

    option: str  # "--http-port"
    help: Mapping[Command, str]  # the commands that take the flag, and what it means there
    metavar: str | Mapping[Command, str] | None = None
    type: Any = None  # argparse type (callable); None: str
    default: Any = None

    def metavar_for(self, command: Command) -> str | None:
        if isinstance(self.metavar, Mapping):
            return self.metavar.get(command)
        return self.metavar

    @property
    def dest(self) -> str:
        return self.option.lstrip("-").replace("-", "_")


def _flag(**kwargs: Any) -> dict[str, Flag]:
    return {"flag": Flag(**kwargs)}


def _port_flag(option: str, what: str, port: int) -> dict[str, Flag]:
    return _flag(
        option=option,
        type=port_number,
        metavar="PORT",
        help={"up": _KEPT % port, "export-systemd": f"host {what} port, {_AS_UP}"},
    )


@dataclass(frozen=True)
class ServeOptions:
    """How to run the server. None: not set here (a lower layer, or the default, decides)."""

    image: str | None = field(
        default=None,
        metadata=_flag(
            option="--image",
            metavar={"up": "REF", "add": "TAG", "export-kube": "REF", "export-systemd": "REF"},
            help={
                "up": "container image to run, used as given (default: the one serving this repository, "
                "else the newest Triton vLLM image this driver supports)",
                "add": "Triton vLLM image for a new repository",
                "export-kube": "the Triton image (default: the one the repository's manifest records)",
                "export-systemd": "the Triton image (default: the one the repository's manifest records)",
            },
        ),
    )
    """The Triton image; default: the repository's image, else the newest this driver runs."""

    name: str | None = field(
        default=None,
        metadata=_flag(
            option="--name",
            metavar={"export-kube": "NAME", "export-systemd": "NAME"},
            help={
                "up": _KEPT % DEFAULT_NAME,
                "export-kube": f"container name, {_AS_UP} (default {DEFAULT_NAME}); also the Kubernetes object names",
                "export-systemd": f"container name, {_AS_UP} (default {DEFAULT_NAME}); "
                "also the Kubernetes object names",
            },
        ),
    )
    """The container's name."""

    listen: str | None = field(
        default=None,
        metadata=_flag(
            option="--listen",
            metavar="ADDR",
            help={
                "up": "host address to publish the ports on (" + _KEPT % DEFAULT_LISTEN + "; 0.0.0.0 exposes them)",
                "export-systemd": f"host address the ports are published on, {_AS_UP} (default {DEFAULT_LISTEN})",
            },
        ),
    )
    """The host address the ports are published on (0.0.0.0: every interface)."""

    http_port: int | None = field(default=None, metadata=_port_flag("--http-port", "HTTP", HTTP_PORT))
    """Host port of Triton's HTTP endpoint."""
    grpc_port: int | None = field(default=None, metadata=_port_flag("--grpc-port", "gRPC", GRPC_PORT))
    """Host port of Triton's gRPC endpoint."""
    metrics_port: int | None = field(default=None, metadata=_port_flag("--metrics-port", "metrics", METRICS_PORT))
    """Host port of Triton's metrics endpoint."""

    live_timeout_s: float = field(
        default=DEFAULT_LIVE_TIMEOUT_S,
        metadata=_flag(
            option="--timeout",
            type=float,
            default=DEFAULT_LIVE_TIMEOUT_S,
            metavar="SECONDS",
            help={"up": f"how long to wait for Triton to come up (default {DEFAULT_LIVE_TIMEOUT_S:.0f})"},
        ),
    )
    """How long `up` waits for Triton to answer (only `up` takes it; never read from a layer)."""

    def is_set(self, key: str) -> bool:
        return getattr(self, key) is not None

    def over(self, base: ServeOptions) -> ServeOptions:
        """These options, with what they leave open taken from `base`."""
        merged = {f.name: getattr(self if self.is_set(f.name) else base, f.name) for f in fields(self)}
        return ServeOptions(**merged)

    @classmethod
    def from_args(cls, args: argparse.Namespace) -> ServeOptions:
        """The flags layer: what the user typed (a command without a flag leaves it unset). Only
        the flags `add_serve_arguments` gave the command are read (`add --name` names a model)."""
        which = getattr(args, SERVE_COMMAND, None)
        values: dict[str, Any] = {}
        for f in fields(cls):
            flag: Flag = f.metadata["flag"]
            if which is not None and which not in flag.help:
                continue
            value = getattr(args, flag.dest, None)
            if value is not None:
                values[f.name] = value
        return cls(**values)


DEFAULTS = ServeOptions(
    name=DEFAULT_NAME, listen=DEFAULT_LISTEN, http_port=HTTP_PORT, grpc_port=GRPC_PORT, metrics_port=METRICS_PORT
)


def add_serve_arguments(parser: argparse.ArgumentParser, which: Command) -> None:
    """The flags `which` takes, built from the ServeOptions fields that declare a help text for it."""
    for f in fields(ServeOptions):
        flag: Flag = f.metadata["flag"]
        if which not in flag.help:
            continue
        kwargs: dict[str, Any] = {"help": flag.help[which]}
        metavar = flag.metavar_for(which)
        if metavar is not None:
            kwargs["metavar"] = metavar
        if flag.type is not None:
            kwargs["type"] = flag.type
        if flag.default is not None:
            kwargs["default"] = flag.default
        parser.add_argument(flag.option, **kwargs)
    parser.set_defaults(**{SERVE_COMMAND: which})


def merge_layers(layers: Mapping[Layer, ServeOptions | None]) -> ServeOptions:
    """The options the layers give, in `LAYER_ORDER` (a missing layer counts as setting nothing)."""
    merged = ServeOptions()
    for layer in LAYER_ORDER:
        options = layers.get(layer)
        if options is not None:
            merged = options.over(merged)
    return merged


def running_options(client: Any, repository: Path) -> ServeOptions | None:
    """The options of the modelwiz container created for `repository`, if there is one."""
    wanted = Path(repository).resolve()
    # Filtered here: podman 4.3's label filter over the API matched nothing.
    for container in client.containers.list(all=True, sparse=False):
        labels = container.labels or {}
        if labels.get(LABEL_MANAGED) != "true":
            continue
        if Path(labels.get(LABEL_REPOSITORY, "/nonexistent")).resolve() != wanted:
            continue
        ports = parse_ports_label(labels.get(LABEL_PORTS, ""))
        if ports is None:
            continue
        return ServeOptions(
            image=labels.get(LABEL_IMAGE) or None,
            name=container.name,
            listen=ports.listen or None,
            http_port=ports.http,
            grpc_port=ports.grpc,
            metrics_port=ports.metrics,
        )
    return None
