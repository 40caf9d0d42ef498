"""Checks that run before anything long starts: CDI spec, driver vs image, SELinux, free ports.

Each failure is a `Problem`: one line saying what is wrong and one saying the fix. `check_all`
collects every problem instead of stopping at the first, so a user fixes them in one go.
"""

from __future__ import annotations

import errno
import json
import socket
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wizard import images
from wizard.container_defaults import ALL_DEVICES, CDI_KIND
from wizard.errors import ModelwizError, UsageError
from wizard.images import GpuKind

if TYPE_CHECKING:
    from wizard.container import LaunchSpec

# Where podman (4.1+) looks for CDI specs; nvidia-ctk writes /var/run/cdi/nvidia.yaml by default.
CDI_DIRS = (Path("/etc/cdi"), Path("/var/run/cdi"))
CDI_GENERATE = "sudo nvidia-ctk cdi generate --output=/var/run/cdi/nvidia.yaml"
SELINUX_ENFORCE = Path("/sys/fs/selinux/enforce")


@dataclass(frozen=True)
class Problem:
    check: str  # "cdi", "driver", "port", ...
    message: str
    fix: str

    def one_line(self) -> str:
        return f"{self.message}; {self.fix}"


class PreflightFailed(ModelwizError):
    """One or more preflight checks failed; `problems` lists each with its fix."""

    def __init__(self, problems: list[Problem]) -> None:
        first = problems[0]
        more = f" (and {len(problems) - 1} more problem(s))" if len(problems) > 1 else ""
        super().__init__(first.message + more, hint=first.fix)
        self.problems = problems


# -- CDI ----------------------------------------------------------------------------------------


def parse_cdi_spec(text: str) -> tuple[str | None, tuple[str, ...]]:
    """(kind, device names) of a CDI spec in JSON or in the YAML that nvidia-ctk writes."""
    stripped = text.lstrip()
    if stripped.startswith("{"):
        data = json.loads(stripped)
        declared = tuple(str(d.get("name")) for d in data.get("devices") or [] if d.get("name") is not None)
        return data.get("kind"), declared
    kind: str | None = None
    names: list[str] = []
    in_devices = False
    item_indent: int | None = None
    for raw in text.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if not line.strip() or line.lstrip().startswith("#") or line.strip() in ("---", "..."):
            continue
        indent = len(line) - len(line.lstrip(" "))
        body = line.strip()
        if indent == 0 and not body.startswith("-"):
            key, _, value = body.partition(":")
            in_devices = key == "devices"
            item_indent = None
            if key == "kind":
                kind = _scalar(value)
            continue
        if not in_devices:
            continue
        if body.startswith("- ") or body == "-":
            if item_indent is None:
                item_indent = indent
            if indent == item_indent:
                body = body[1:].strip()
                indent = item_indent + 2
        if item_indent is not None and indent == item_indent + 2 and body.startswith("name:"):
            names.append(_scalar(body[5:]))
    return kind, tuple(names)


def _scalar(value: str) -> str:
    value = value.strip()
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        return value[1:-1]
    return value


def cdi_gpu_names(dirs: Iterable[Path] = CDI_DIRS) -> frozenset[str]:
    """Device names declared for `nvidia.com/gpu` in the CDI spec files under `dirs`."""
    names: set[str] = set()
    for folder in dirs:
        try:
            files = sorted(p for p in Path(folder).iterdir() if p.suffix in (".yaml", ".yml", ".json"))
        except OSError:
            continue
        for path in files:
            try:
                kind, found = parse_cdi_spec(path.read_text(encoding="utf-8"))
            except (OSError, ValueError, UnicodeDecodeError, AttributeError):
                continue  # podman skips unreadable specs too; a valid one elsewhere may do
            if kind == CDI_KIND:
                names.update(found)
    return frozenset(names)


def check_cdi(devices: Iterable[str], dirs: Iterable[Path] = CDI_DIRS) -> Problem | None:
    dirs = tuple(dirs)
    declared = cdi_gpu_names(dirs)
    where = " or ".join(str(d) for d in dirs)
    if not declared:
        return Problem(
            "cdi",
            f"no CDI spec for {CDI_KIND} in {where}",
            f"install nvidia-container-toolkit and run `{CDI_GENERATE}`",
        )
    missing = [d for d in devices if d not in declared]
    if missing:
        names = ", ".join(f"{CDI_KIND}={d}" for d in missing)
        return Problem(
            "cdi",
            f"the CDI spec does not name {names} (it has: {', '.join(sorted(declared))})",
            f"regenerate it after driver or MIG changes: `{CDI_GENERATE}`",
        )
    return None


# -- driver and image ---------------------------------------------------------------------------


def choose_image(requested: str | None, driver_version: str | None, gpu_kind: GpuKind = "consumer") -> str:
    """The image to run: `requested` as given, else the newest this driver runs (on GPUs of
    `gpu_kind`; "consumer" when unknown, which never relies on forward compatibility)."""
    if requested:
        return requested
    try:
        return images.choose_image(driver_version, gpu_kind).info.tag
    except images.ImageError as error:
        raise PreflightFailed([Problem("driver", error.message, error.hint or "")]) from None


def check_driver(image: str, driver_version: str | None, gpu_kind: GpuKind | None = None) -> Problem | None:
    """A known image must run on this driver: natively, through CUDA minor-version compatibility,
    or (on data-center GPUs; either kind when `gpu_kind` is unknown) through forward compatibility.
    Unknown images and unknown drivers pass."""
    info = images.find_image(image)
    if info is None or not driver_version:
        return None
    kinds: tuple[GpuKind, ...] = (gpu_kind,) if gpu_kind else ("consumer", "data-center")
    if any(info.driver_path(driver_version, kind) for kind in kinds):
        return None
    newest = images.pick_image(driver_version, gpu_kind or "consumer")
    fix = f"update the NVIDIA driver to {info.min_driver_any_gpu or info.min_driver} or newer"
    if newest:
        fix += f", or use --image {newest.short_tag}"
    return Problem("driver", f"{info.short_tag} {info.driver_requirement()}; this host has {driver_version}", fix)


# -- SELinux ------------------------------------------------------------------------------------


def selinux_enforcing(path: Path = SELINUX_ENFORCE) -> bool:
    try:
        return path.read_text().strip() == "1"
    except OSError:
        return False


# -- ports --------------------------------------------------------------------------------------


def port_in_use(address: str, port: int) -> bool:
    """True when something already listens on (address, port) (or on the wildcard address)."""
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        try:
            sock.bind((address, port))
        except OSError as error:
            if error.errno == errno.EADDRINUSE:
                return True
            if error.errno == errno.EADDRNOTAVAIL:
                raise UsageError(
                    f"{address} is not an address of this host",
                    hint="use --listen 127.0.0.1, or 0.0.0.0 for all addresses",
                ) from error
            raise
    return False


def check_ports(address: str, ports: dict[str, int]) -> list[Problem]:
    problems = []
    for what, port in ports.items():
        if port_in_use(address, port):
            flag = f"--{what}-port"
            problems.append(
                Problem(
                    "port",
                    f"port {port} on {address} ({what}) is already in use",
                    f"stop what listens there (`ss -ltnp 'sport = :{port}'` shows it) or pass {flag} with a free port",
                )
            )
    return problems


# -- all together -------------------------------------------------------------------------------


def check_all(
    spec: LaunchSpec,
    *,
    driver_version: str | None,
    cdi_dirs: Iterable[Path] = CDI_DIRS,
    ports: bool = True,
) -> list[Problem]:
    """Every problem that would stop `spec` from starting; empty when it may go ahead."""
    problems: list[Problem] = []
    if not spec.repository.is_dir():
        problems.append(
            Problem("repository", f"model repository {spec.repository} does not exist", "pass --repository DIR")
        )
    cdi = check_cdi(spec.devices if spec.devices else (ALL_DEVICES,), cdi_dirs)
    if cdi:
        problems.append(cdi)
    driver = check_driver(spec.image, driver_version)
    if driver:
        problems.append(driver)
    if ports:
        problems.extend(
            check_ports(
                spec.listen,
                {"http": spec.http_port, "grpc": spec.grpc_port, "metrics": spec.metrics_port}
                | ({"openai": spec.openai_port} if spec.openai_port is not None else {}),
            )
        )
    return problems


def raise_for(problems: list[Problem]) -> None:
    if problems:
        raise PreflightFailed(problems)


__all__ = [
    "CDI_DIRS",
    "PreflightFailed",
    "Problem",
    "cdi_gpu_names",
    "check_all",
    "check_cdi",
    "check_driver",
    "check_ports",
    "choose_image",
    "parse_cdi_spec",
    "port_in_use",
    "raise_for",
    "selinux_enforcing",
]
