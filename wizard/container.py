"""What the Triton container is, as plain facts: `LaunchSpec`, and the podman-py arguments for it.

Pure: nothing here talks to podman. `create_kwargs(spec)` is what `containers.create` takes; the
export helper turns the same `LaunchSpec` into Kubernetes manifests and a Quadlet unit, so every
fact (image, devices, mount, ports, shm, ulimits, command) lives in the spec and nowhere else.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wizard.container_defaults import ALL_DEVICES, CDI_KIND, DEFAULT_MOUNT_POINT, DEFAULT_NAME
from wizard.errors import UsageError
from wizard.openai_frontend import (
    DEFAULT_MAX_TOKENS,
    FIRST_RELEASE_WITH_EXPLICIT_CONTROL,
    FRONTEND_ENVIRONMENT,
    METRICS_ROUTE,
    OPENAI_PORT,
    FrontendArgs,
    FrontendFeatures,
    frontend_command,
    frontend_features,
)
from wizard.plan_types import sort_devices
from wizard.units import GiB

# Compile caches (vLLM's torch.compile artifacts, TorchInductor's and Triton's kernels) live on a
# volume, so a recreated container does not compile cold: vLLM's VLLM_CACHE_ROOT (default
# $XDG_CACHE_HOME/vllm, vllm/envs.py), TORCHINDUCTOR_CACHE_DIR (default /tmp/torchinductor_<user>,
# torch/_inductor/runtime/cache_dir_utils.py) and TRITON_CACHE_DIR (default ~/.triton/cache).
CACHE_DIR = "/opt/modelwiz/cache"
CACHE_ENVIRONMENT = {
    "XDG_CACHE_HOME": CACHE_DIR,
    "VLLM_CACHE_ROOT": f"{CACHE_DIR}/vllm",
    "TORCHINDUCTOR_CACHE_DIR": f"{CACHE_DIR}/torchinductor",
    "TRITON_CACHE_DIR": f"{CACHE_DIR}/triton",
}
# GPUs come only through CDI: "void" switches off the legacy NVIDIA hook/runtime injection, which on
# a host that still has oci-nvidia-hook.json would add every GPU beside the CDI ones and shift the
# container-local ids config.pbtxt numbers against (nvidia-container-toolkit's CDI specs set it too).
VISIBLE_DEVICES = "NVIDIA_VISIBLE_DEVICES"
# config.pbtxt numbers GPUs in host (PCI bus) order; CUDA's default order is fastest first, which
# differs on machines with mixed GPUs.
BASE_ENVIRONMENT = {"CUDA_DEVICE_ORDER": "PCI_BUS_ID", VISIBLE_DEVICES: "void", **CACHE_ENVIRONMENT}

# Container-side ports are tritonserver's defaults; only the host side changes.
HTTP_PORT, GRPC_PORT, METRICS_PORT = 8000, 8001, 8002
# Where the host reaches a server started with the defaults.
DEFAULT_HTTP_URL = f"http://127.0.0.1:{HTTP_PORT}"

# Triton's NGC entrypoint recommends: --shm-size=1g --ulimit memlock=-1 --ulimit stack=67108864.
SHM_SIZE_BYTES = 1 * GiB
STACK_BYTES = 67108864

# Labels modelwiz puts on its container. A re-run compares them with the new spec to decide
# between "load the new models" and "recreate".
LABEL_MANAGED = "io.modelwiz.managed"
LABEL_IMAGE = "io.modelwiz.image"
LABEL_DEVICES = "io.modelwiz.devices"
LABEL_REPOSITORY = "io.modelwiz.repository"
LABEL_MOUNT = "io.modelwiz.mount-point"
LABEL_PORTS = "io.modelwiz.ports"
LABEL_MODELS = "io.modelwiz.models"
# The OpenAI frontend: "PORT:CHAT_MODEL" (the host port, and the model whose tokenizer it chats
# with; empty when no model has a chat template), "off" (--no-openai), or "" (the image has none).
LABEL_OPENAI = "io.modelwiz.openai"
OPENAI_OFF = "off"


ANY_ADDRESS = ("0.0.0.0", "", "::")  # listen addresses that mean "every interface"
LOOPBACK = "127.0.0.1"
DEFAULT_LISTEN = LOOPBACK


def reach_host(listen: str) -> str:
    """The host part of a URL that reaches ports published on `listen`, from this host."""
    host = LOOPBACK if listen in ANY_ADDRESS else listen
    return f"[{host}]" if ":" in host else host


@dataclass(frozen=True)
class PortsLabel:
    """The ports label `listen:http,grpc,metrics` modelwiz puts on its container."""

    listen: str
    http: int
    grpc: int
    metrics: int

    def __str__(self) -> str:
        return f"{self.listen}:{self.http},{self.grpc},{self.metrics}"

    @property
    def host(self) -> str:
        return reach_host(self.listen)

    @property
    def http_url(self) -> str:
        return f"http://{reach_host(self.listen)}:{self.http}"


def parse_ports_label(value: str) -> PortsLabel | None:
    """The ports label read back; None when it is missing or not modelwiz's shape."""
    listen, _, ports = value.rpartition(":")
    try:
        http, grpc, metrics = (int(p) for p in ports.split(","))
    except ValueError:
        return None
    return PortsLabel(listen, http, grpc, metrics)


@dataclass(frozen=True)
class OpenAILabel:
    """The OpenAI label read back: the frontend's host port and the model whose tokenizer it uses."""

    port: int
    chat_model: str | None

    def __str__(self) -> str:
        return f"{self.port}:{self.chat_model or ''}"


def parse_openai_label(value: str) -> OpenAILabel | None:
    """The OpenAI label read back; None when the frontend is off, absent, or the label is not modelwiz's."""
    port, sep, chat_model = value.partition(":")
    if not sep or not port.isdigit():
        return None
    return OpenAILabel(int(port), chat_model or None)


@dataclass(frozen=True)
class Ulimit:
    name: str  # "stack", "memlock", "nofile", ...
    soft: int  # -1: unlimited
    hard: int


# podman's own nofile/nproc for a container that names neither ("a default value of 1048576 will
# be used", podman docs/source/markdown/options/ulimit.md). Naming any ulimit over the API drops
# containers.conf's default_ulimits, so rootful podman then asks for this value even where the
# host's hard limit is lower, and the runtime fails with "error setting rlimit type 7".
PODMAN_RLIMIT_DEFAULT = 1048576


def default_ulimits(
    *, rootless: bool, nofile: int = PODMAN_RLIMIT_DEFAULT, nproc: int = PODMAN_RLIMIT_DEFAULT
) -> tuple[Ulimit, ...]:
    """Triton's recommended limits; memlock -1 only rootful (rootless podman refuses to raise it).

    nofile/nproc are always named, at what the host can grant (`nofile`, `nproc`: its hard
    limits, capped at podman's own default), so podman never asks for more than that.
    """
    stack = Ulimit("stack", STACK_BYTES, STACK_BYTES)
    files = min(nofile, PODMAN_RLIMIT_DEFAULT)
    processes = min(nproc, PODMAN_RLIMIT_DEFAULT)
    granted = (Ulimit("nofile", files, files), Ulimit("nproc", processes, processes))
    return (stack, *granted) if rootless else (Ulimit("memlock", -1, -1), stack, *granted)


@dataclass(frozen=True)
class LaunchSpec:
    image: str
    repository: Path  # host path of the model repository (absolute)
    mount_point: str = DEFAULT_MOUNT_POINT  # where the container sees it (read-only)
    devices: tuple[str, ...] = ()  # CDI ids: "0", "1:0" (MIG), a GPU UUID, or "all"
    models: tuple[str, ...] = ()  # Triton model names to load, in this order
    name: str = DEFAULT_NAME
    listen: str = DEFAULT_LISTEN  # host address the ports are published on
    http_port: int = HTTP_PORT  # host ports
    grpc_port: int = GRPC_PORT
    metrics_port: int = METRICS_PORT
    shm_size_bytes: int = SHM_SIZE_BYTES
    ulimits: tuple[Ulimit, ...] = field(default_factory=lambda: default_ulimits(rootless=False))
    selinux_label_disable: bool = False  # SELinux enforcing: GPUs need label=disable
    environment: tuple[tuple[str, str], ...] = ()
    labels: tuple[tuple[str, str], ...] = ()  # extra labels, beside modelwiz's own
    # Triton's OpenAI-compatible frontend (wizard/openai_frontend.py): its host port, None when off.
    # It runs Triton in process and serves /v2 (HTTP, gRPC) on the usual container ports beside it.
    openai_port: int | None = None
    tokenizer: str | None = None  # container path of the weights folder whose chat template it uses
    chat_model: str | None = None  # the model that folder belongs to
    openai_off: str | None = None  # why the OpenAI API is off ("--no-openai", or the image has none)
    completions_only: tuple[tuple[str, str], ...] = ()  # (model, why) not chatting at /v1/chat/completions

    @property
    def cache_volume(self) -> str:
        """The named podman volume that keeps the compile caches across recreated containers."""
        return f"{self.name}-cache"

    @property
    def cdi_devices(self) -> tuple[str, ...]:
        return tuple(f"{CDI_KIND}={d}" for d in self.devices)

    @property
    def openai(self) -> bool:
        return self.openai_port is not None

    @property
    def command(self) -> list[str]:
        if self.openai:
            # launch_spec_for turns the frontend off for an image without it; a spec made by hand
            # gets the oldest frontend modelwiz runs.
            features = frontend_features(self.image) or FrontendFeatures(FIRST_RELEASE_WITH_EXPLICIT_CONTROL)
            # Explicit model control: modelwiz loads the models one at a time through
            # POST /v1/models/{name}/load, the only load the frontend's model list sees.
            args = FrontendArgs(
                model_repository=self.mount_point,
                tokenizer=self.tokenizer,
                openai_port=OPENAI_PORT,
                kserve_http_port=HTTP_PORT,
                kserve_grpc_port=GRPC_PORT,
                model_control="explicit",
                default_max_tokens=DEFAULT_MAX_TOKENS,
            )
            return frontend_command(args, features)
        return [
            "tritonserver",
            f"--model-repository={self.mount_point}",
            "--model-control-mode=explicit",
        ]

    @property
    def metrics_container_port(self) -> int:
        """The frontend serves Triton's metrics at /metrics on its own port and never starts :8002."""
        return OPENAI_PORT if self.openai else METRICS_PORT

    @property
    def published(self) -> tuple[tuple[int, int], ...]:
        """(container port, host port) pairs, the metrics port included: with the OpenAI frontend
        the host's metrics port reaches the frontend's /metrics."""
        pairs = [(HTTP_PORT, self.http_port), (GRPC_PORT, self.grpc_port)]
        if self.openai_port is not None:
            pairs.append((OPENAI_PORT, self.openai_port))
        pairs.append((self.metrics_container_port, self.metrics_port))
        return tuple(pairs)

    @property
    def host_ports(self) -> dict[int, int]:
        """container port -> host port (the first host port, where two reach one container port)."""
        ports: dict[int, int] = {}
        for container, host in self.published:
            ports.setdefault(container, host)
        return ports

    @property
    def openai_url(self) -> str | None:
        """The OpenAI base URL as the host reaches it (`.../v1`); None when the frontend is off."""
        if self.openai_port is None:
            return None
        return f"http://{reach_host(self.listen)}:{self.openai_port}/v1"

    @property
    def http_url(self) -> str:
        """Where the host reaches Triton's HTTP endpoint."""
        return f"http://{reach_host(self.listen)}:{self.http_port}"

    @property
    def grpc_address(self) -> str:
        """Where the host reaches Triton's gRPC endpoint (host:port)."""
        return f"{reach_host(self.listen)}:{self.grpc_port}"

    @property
    def metrics_url(self) -> str:
        """Triton's Prometheus metrics, as the host reaches them."""
        return f"http://{reach_host(self.listen)}:{self.metrics_port}{METRICS_ROUTE}"

    @property
    def exposed(self) -> bool:
        return self.listen not in (LOOPBACK, "::1", "localhost")

    def without_ulimit(self, name: str) -> LaunchSpec:
        return replace(self, ulimits=tuple(u for u in self.ulimits if u.name != name))


def openai_unavailable(image: str) -> str | None:
    """Why `image` cannot serve the OpenAI API the way modelwiz runs it; None when it can. modelwiz
    loads models one at a time (vLLM engines that start together miscount each other's memory),
    which the frontend allows from 26.04 (`--model-control-mode explicit`, PR #8682); before that it
    loads every model of the repository at startup."""
    features = frontend_features(image)
    if features is None:
        return f"image {image} has no OpenAI-compatible frontend (Triton 24.12 or newer has it): serving /v2 only"
    if not features.explicit_model_control:
        return (
            f"the OpenAI frontend in image {image} cannot load models one at a time (26.04 or newer can): "
            "serving /v2 only"
        )
    return None


def _device_list(devices: list[str] | tuple[str, ...]) -> tuple[str, ...]:
    ids = {d.strip() for d in devices if d.strip()}
    for d in ids:
        if d.startswith(f"{CDI_KIND}="):
            raise UsageError(f"device {d!r} is a full CDI name", hint="give only the id after '=' (e.g. 0)")
    if not ids or ALL_DEVICES in ids:
        return (ALL_DEVICES,)
    numeric = {d for d in ids if d.replace(":", "").isdigit()}
    return sort_devices(numeric) + tuple(sorted(ids - numeric))


# podman's own rule for container names.
_CONTAINER_NAME = re.compile(r"[a-zA-Z0-9][a-zA-Z0-9_.-]*")


def launch_spec_for(
    repository: Path,
    *,
    models: list[str] | tuple[str, ...],
    devices: list[str] | tuple[str, ...],
    image: str,
    mount_point: str = DEFAULT_MOUNT_POINT,
    name: str = DEFAULT_NAME,
    listen: str = DEFAULT_LISTEN,
    http_port: int = HTTP_PORT,
    grpc_port: int = GRPC_PORT,
    metrics_port: int = METRICS_PORT,
    rootless: bool = False,
    ulimits: tuple[Ulimit, ...] | None = None,
    selinux_enforcing: bool = False,
    environment: Mapping[str, str] | None = None,
    openai_port: int | None = None,
    tokenizer: str | None = None,
    chat_model: str | None = None,
    openai_off: str | None = None,
    completions_only: tuple[tuple[str, str], ...] = (),
) -> LaunchSpec:
    """Build and check a LaunchSpec from plain arguments (no manifest, no podman). An image without
    the OpenAI frontend serves /v2 only, and `openai_off` says so."""
    if not image:
        raise UsageError("no container image given", hint="pass --image REF")
    if not mount_point.startswith("/"):
        raise UsageError(f"mount point {mount_point!r} is not absolute", hint="use a path such as /models")
    if openai_port is not None:
        openai_off = openai_unavailable(image)
        if openai_off is not None:
            openai_port, tokenizer, chat_model = None, None, None
    ports = (http_port, grpc_port, metrics_port) + ((openai_port,) if openai_port is not None else ())
    for port in ports:
        if not 1 <= port <= 65535:
            raise UsageError(f"port {port} is out of range", hint="use a port between 1 and 65535")
    if len(set(ports)) != len(ports):
        what = "HTTP, gRPC, metrics and OpenAI" if openai_port is not None else "HTTP, gRPC and metrics"
        raise UsageError(f"the {what} ports must differ (got {ports})")
    if not models:
        raise UsageError(
            f"no models to load from {repository}",
            hint="add one first with `modelwiz add MODEL`",
        )
    if not _CONTAINER_NAME.fullmatch(name):
        raise UsageError(
            f"{name!r} is not a usable container name",
            hint="use letters, digits, '_', '.' and '-', starting with a letter or digit",
        )
    try:
        ipaddress.ip_address(listen)
    except ValueError:
        raise UsageError(
            f"{listen!r} is not an IP address to publish the ports on",
            hint="use 127.0.0.1 (this machine only) or 0.0.0.0 (every interface)",
        ) from None
    return LaunchSpec(
        image=image,
        repository=Path(repository).resolve(),
        mount_point=mount_point.rstrip("/") or "/",
        devices=_device_list(devices),
        models=tuple(models),
        name=name,
        listen=listen,
        http_port=http_port,
        grpc_port=grpc_port,
        metrics_port=metrics_port,
        ulimits=default_ulimits(rootless=rootless) if ulimits is None else tuple(ulimits),
        selinux_label_disable=selinux_enforcing,
        environment=tuple(
            sorted({**BASE_ENVIRONMENT, **(FRONTEND_ENVIRONMENT if openai_port else {}), **(environment or {})}.items())
        ),
        openai_port=openai_port,
        tokenizer=tokenizer if openai_port is not None else None,
        chat_model=chat_model if openai_port is not None else None,
        openai_off=openai_off,
        completions_only=completions_only if openai_port is not None else (),
    )


def _ports_label(spec: LaunchSpec) -> str:
    return str(PortsLabel(spec.listen, spec.http_port, spec.grpc_port, spec.metrics_port))


def _openai_label(spec: LaunchSpec) -> str:
    if spec.openai_port is not None:
        return str(OpenAILabel(spec.openai_port, spec.chat_model))
    return OPENAI_OFF if spec.openai_off == NO_OPENAI else ""


NO_OPENAI = "--no-openai"  # LaunchSpec.openai_off when the user turned the frontend off


def spec_labels(spec: LaunchSpec) -> dict[str, str]:
    """The labels that identify what the container was created from."""
    labels = dict(spec.labels)
    labels.update(
        {
            LABEL_MANAGED: "true",
            LABEL_IMAGE: spec.image,
            LABEL_DEVICES: ",".join(spec.devices),
            LABEL_REPOSITORY: str(spec.repository),
            LABEL_MOUNT: spec.mount_point,
            LABEL_PORTS: _ports_label(spec),
            LABEL_MODELS: ",".join(spec.models),
            LABEL_OPENAI: _openai_label(spec),
        }
    )
    return labels


def recreate_reasons(spec: LaunchSpec, labels: Mapping[str, str]) -> list[str]:
    """Why a running container made from `labels` cannot serve `spec` (empty: reuse it)."""
    checks = (
        (LABEL_IMAGE, spec.image, "image"),
        (LABEL_DEVICES, ",".join(spec.devices), "GPUs"),
        (LABEL_REPOSITORY, str(spec.repository), "repository"),
        (LABEL_MOUNT, spec.mount_point, "mount point"),
        (LABEL_PORTS, _ports_label(spec), "ports"),
        (LABEL_OPENAI, _openai_label(spec), "OpenAI API"),
    )
    reasons = []
    for key, wanted, what in checks:
        have = labels.get(key)
        if (have or "") != wanted:
            reasons.append(f"{what}: {have or '?'} -> {wanted}")
    return reasons


RLIM_INFINITY = 2**64 - 1


def _rlimit(value: int) -> int:
    """libpod's r_limits are uint64: "unlimited" (-1 on the command line) is RLIM_INFINITY."""
    return RLIM_INFINITY if value < 0 else value


def _binding(listen: str, host_port: int) -> int | tuple[str, int]:
    """podman-py's port value. Every interface is a bare port, so no host IP is sent: libpod
    reads an unset HostIP as all interfaces (pkg/specgen PortMapping), while a HostIP of
    "0.0.0.0" sent over the API became a rule for that literal address in podman 4.x (podman
    issue #17407) and nothing could reach the port. podman-py sends a bare int without host_ip
    (podman/domain/containers_create.py, parse_host_port)."""
    return host_port if listen in ANY_ADDRESS else (listen, host_port)


def _port_bindings(spec: LaunchSpec) -> dict[str, int | tuple[str, int] | list[int | tuple[str, int]]]:
    """podman-py's `ports`: container port -> its host binding, or a list of them where two host
    ports reach one container port (podman/domain/containers_create.py parse_host_port)."""
    bindings: dict[str, list[int | tuple[str, int]]] = {}
    for container, host in spec.published:
        bindings.setdefault(f"{container}/tcp", []).append(_binding(spec.listen, host))
    return {port: hosts[0] if len(hosts) == 1 else hosts for port, hosts in bindings.items()}


def create_kwargs(spec: LaunchSpec) -> dict[str, Any]:
    """Keyword arguments for podman-py `containers.create(**kwargs)`."""
    kwargs: dict[str, Any] = {
        "image": spec.image,
        "name": spec.name,
        "command": spec.command,
        "devices": list(spec.cdi_devices),
        "mounts": [
            {
                "type": "bind",
                "source": str(spec.repository),
                "target": spec.mount_point,
                "read_only": True,
            }
        ],
        "ports": _port_bindings(spec),
        "volumes": {spec.cache_volume: {"bind": CACHE_DIR, "mode": "rw"}},
        "shm_size": spec.shm_size_bytes,
        "ulimits": [{"Name": u.name, "Soft": _rlimit(u.soft), "Hard": _rlimit(u.hard)} for u in spec.ulimits],
        "labels": spec_labels(spec),
        "environment": dict(spec.environment),
        "privileged": False,
        "detach": True,
    }
    if spec.selinux_label_disable:
        # libpod takes the part after "label=" (podman pkg/specgenutil: SelinuxOpts).
        kwargs["security_opt"] = ["disable"]
    return kwargs
