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

from wizard.errors import UsageError
from wizard.plan_types import sort_devices
from wizard.units import GiB

DEFAULT_NAME = "modelwiz-triton"

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
# Where the repository appears inside the container: the path the original setup notes use, and
# what the manifest records by default (model.json paths are written against it).
DEFAULT_MOUNT_POINT = "/opt/app-root/mnt/model_repository"
CDI_KIND = "nvidia.com/gpu"
ALL_DEVICES = "all"

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

    @property
    def cache_volume(self) -> str:
        """The named podman volume that keeps the compile caches across recreated containers."""
        return f"{self.name}-cache"

    @property
    def cdi_devices(self) -> tuple[str, ...]:
        return tuple(f"{CDI_KIND}={d}" for d in self.devices)

    @property
    def command(self) -> list[str]:
        return [
            "tritonserver",
            f"--model-repository={self.mount_point}",
            "--model-control-mode=explicit",
        ]

    @property
    def host_ports(self) -> dict[int, int]:
        """container port -> host port."""
        return {HTTP_PORT: self.http_port, GRPC_PORT: self.grpc_port, METRICS_PORT: self.metrics_port}

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
        return f"http://{reach_host(self.listen)}:{self.metrics_port}/metrics"

    @property
    def exposed(self) -> bool:
        return self.listen not in (LOOPBACK, "::1", "localhost")

    def without_ulimit(self, name: str) -> LaunchSpec:
        return replace(self, ulimits=tuple(u for u in self.ulimits if u.name != name))


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
) -> LaunchSpec:
    """Build and check a LaunchSpec from plain arguments (no manifest, no podman)."""
    if not image:
        raise UsageError("no container image given", hint="pass --image REF")
    if not mount_point.startswith("/"):
        raise UsageError(f"mount point {mount_point!r} is not absolute", hint="use a path such as /models")
    ports = (http_port, grpc_port, metrics_port)
    for port in ports:
        if not 1 <= port <= 65535:
            raise UsageError(f"port {port} is out of range", hint="use a port between 1 and 65535")
    if len(set(ports)) != 3:
        raise UsageError(f"the HTTP, gRPC and metrics ports must differ (got {ports})")
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
        environment=tuple(sorted({**BASE_ENVIRONMENT, **(environment or {})}.items())),
    )


def _ports_label(spec: LaunchSpec) -> str:
    return str(PortsLabel(spec.listen, spec.http_port, spec.grpc_port, spec.metrics_port))


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
    )
    reasons = []
    for key, wanted, what in checks:
        have = labels.get(key)
        if have != wanted:
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
        "ports": {f"{c}/tcp": _binding(spec.listen, h) for c, h in spec.host_ports.items()},
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
