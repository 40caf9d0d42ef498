"""What `modelwiz export` writes, in one shape: the container `modelwiz up` creates, plus the models.

The container facts are read back from exactly what `modelwiz up` hands podman-py
(`wizard.container.create_kwargs(LaunchSpec)`), so a Kubernetes Deployment or a systemd unit can
never drift from the container the workstation runs: a podman-py option this module does not know
is an error, not something silently dropped.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.errors import ModelwizError

if TYPE_CHECKING:
    from wizard.repository import Repository

TRITON_PORTS = {8000: "http", 8001: "grpc", 8002: "metrics"}


@dataclass(frozen=True)
class Mount:
    source: str
    target: str
    read_only: bool
    relabel: str | None = None  # "z" / "Z" (SELinux), as podman takes it


@dataclass(frozen=True)
class Port:
    container_port: int
    host_port: int | None  # None: podman picks one
    host_ip: str | None  # None: all addresses
    protocol: str = "tcp"


@dataclass(frozen=True)
class Ulimit:
    name: str
    soft: int
    hard: int


@dataclass(frozen=True)
class ContainerFacts:
    """The container `modelwiz up` creates, normalised from podman-py `containers.create` kwargs."""

    image: str
    name: str
    command: tuple[str, ...]
    devices: tuple[str, ...] = ()  # CDI names, e.g. nvidia.com/gpu=0
    mounts: tuple[Mount, ...] = ()
    ports: tuple[Port, ...] = ()
    shm_size: int | None = None  # bytes
    ulimits: tuple[Ulimit, ...] = ()
    security_opt: tuple[str, ...] = ()  # libpod form: "disable" means label=disable
    labels: dict[str, str] = field(default_factory=dict)
    environment: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ExportedModel:
    """One model of the repository, as a cluster needs it."""

    name: str  # the Triton model name (folder name)
    source: str  # Hugging Face repo id
    revision: str  # the commit sha that was downloaded
    weights_dir: str  # folder inside <mount>/<name>/ holding the weights
    weights_bytes: int
    config_pbtxt: str  # the repository's file, as served
    model_json: str  # the repository's file, as served
    files: tuple[str, ...] = ()  # the files to fetch (relative paths), as the workstation downloaded them


@dataclass(frozen=True)
class ServingFacts:
    """Everything an export needs: the container and the models it serves."""

    container: ContainerFacts
    mount_point: str
    models: tuple[ExportedModel, ...]
    gpus: tuple[str, ...] = ()  # the devices the plans use (CDI ids "0", "1:0"): one GPU each
    skipped: tuple[str, ...] = ()  # "name: why", models in the repository that are not exported

    @property
    def gpu_count(self) -> int:
        """GPUs the server needs on one node (a MIG slice counts as one device)."""
        if self.gpus:
            return len(self.gpus)
        return len([d for d in self.container.devices if not d.endswith("=all")])

    def boot_command(self) -> tuple[str, ...]:
        return boot_command(self.container.command, [m.name for m in self.models])


# --- podman-py create kwargs -> ContainerFacts ------------------------------------------------

_SIZE = re.compile(r"^(\d+)([bkmg]?)$", re.IGNORECASE)
_SIZE_FACTOR = {"": 1, "b": 1, "k": 1024, "m": 1024**2, "g": 1024**3}
# Options that change nothing an export has to reproduce (how podman-py is called).
_IGNORED = {"detach", "stdout", "stderr", "stream", "tty", "privileged"}


def parse_shm_size(value: int | str) -> int:
    """podman-py's shm_size: int bytes or `\\d+[bkmg]` (binary units, as podman reads them)."""
    if isinstance(value, int):
        return value
    match = _SIZE.match(str(value).strip())
    if not match:
        raise ValueError(f"shm_size {value!r} is not bytes or \\d+[bkmg]")
    return int(match.group(1)) * _SIZE_FACTOR[match.group(2).lower()]


def format_size(n: int) -> str:
    """Bytes as podman's flags take them: `1g`, `512m`, or plain bytes."""
    for suffix, factor in (("g", 1024**3), ("m", 1024**2), ("k", 1024)):
        if n % factor == 0 and n >= factor:
            return f"{n // factor}{suffix}"
    return str(n)


def _ports(value: Any) -> tuple[Port, ...]:
    ports: list[Port] = []
    for key, binding in dict(value or {}).items():
        number, _, proto = str(key).partition("/")
        bindings = binding if isinstance(binding, list) else [binding]
        for item in bindings:
            host_ip: str | None = None
            host_port: int | None
            if item is None:
                host_port = None
            elif isinstance(item, tuple):
                host_ip, host_port = str(item[0]), int(item[1])
            elif isinstance(item, dict):
                host_ip = item.get("HostIp") or item.get("host_ip") or None
                raw = item.get("HostPort", item.get("host_port"))
                host_port = int(raw) if raw not in (None, "") else None
            else:
                host_port = int(item)
            ports.append(Port(int(number), host_port, host_ip, proto or "tcp"))
    return tuple(sorted(ports, key=lambda p: (p.container_port, p.protocol, p.host_ip or "")))


def _mounts(value: Any) -> tuple[Mount, ...]:
    mounts = []
    for item in value or ():
        kind = item.get("type", "bind")
        if kind != "bind":
            raise ValueError(f"mount type {kind!r} is not exportable")
        mounts.append(
            Mount(
                source=str(item["source"]),
                target=str(item["target"]),
                read_only=bool(item.get("read_only", False)),
                relabel=item.get("relabel"),
            )
        )
    return tuple(mounts)


def _volumes(value: Any) -> tuple[Mount, ...]:
    """podman-py's `volumes={host: {"bind": target, "mode": "ro", "extended_mode": [...]}}`."""
    mounts = []
    for source, spec in dict(value or {}).items():
        modes = [m for m in str(spec.get("mode", "rw")).split(",") if m]
        modes += list(spec.get("extended_mode", ()))
        relabel = next((m for m in modes if m in ("z", "Z")), None)
        mounts.append(Mount(str(source), str(spec["bind"]), "ro" in modes, relabel))
    return tuple(mounts)


def _environment(value: Any) -> dict[str, str]:
    if isinstance(value, Mapping):
        return {str(k): str(v) for k, v in value.items()}
    env: dict[str, str] = {}
    for item in value or ():
        key, _, val = str(item).partition("=")
        env[key] = val
    return env


def _rlimit(value: Any) -> int:
    """libpod's uint64 RLIM_INFINITY as the -1 ("unlimited") podman's --ulimit takes."""
    number = int(value)
    return -1 if number < 0 or number >= 2**63 else number


def container_facts(kwargs: Mapping[str, Any]) -> ContainerFacts:
    """Normalise `create_kwargs(LaunchSpec)`; raise ValueError for an option an export would lose."""
    known = {
        "image",
        "name",
        "command",
        "devices",
        "mounts",
        "volumes",
        "ports",
        "shm_size",
        "ulimits",
        "security_opt",
        "labels",
        "environment",
    }
    unknown = sorted(set(kwargs) - known - _IGNORED)
    if kwargs.get("privileged"):
        unknown.append("privileged")
    if unknown:
        raise ValueError(f"podman options the export cannot reproduce: {', '.join(unknown)}")
    command = kwargs.get("command") or ()
    if isinstance(command, str):
        command = [command]  # podman-py wraps a str the same way
    ulimits = tuple(Ulimit(str(u["Name"]), _rlimit(u["Soft"]), _rlimit(u["Hard"])) for u in kwargs.get("ulimits") or ())
    shm = kwargs.get("shm_size")
    return ContainerFacts(
        image=str(kwargs["image"]),
        name=str(kwargs.get("name") or "modelwiz-triton"),
        command=tuple(str(c) for c in command),
        devices=tuple(str(d) for d in kwargs.get("devices") or ()),
        mounts=_mounts(kwargs.get("mounts")) + _volumes(kwargs.get("volumes")),
        ports=_ports(kwargs.get("ports")),
        shm_size=parse_shm_size(shm) if shm is not None else None,
        ulimits=ulimits,
        security_opt=tuple(str(s) for s in kwargs.get("security_opt") or ()),
        labels={str(k): str(v) for k, v in dict(kwargs.get("labels") or {}).items()},
        environment=_environment(kwargs.get("environment")),
    )


# --- the command a container started without modelwiz runs -----------------------------------


def boot_command(command: tuple[str, ...] | list[str], models: list[str]) -> tuple[str, ...]:
    """`modelwiz up`'s tritonserver command, made to load the models by itself.

    `modelwiz up` starts Triton with `--model-control-mode=explicit` and then loads the models one
    at a time over HTTP, so vLLM engines that share a GPU never profile memory at the same time.
    A container started by systemd or Kubernetes has nobody to send those calls, so the same
    command gets `--load-model=<name>` for each model and `--model-load-thread-count=1`, which
    makes Triton itself load them one after another at startup.
    """
    args = list(command)
    mode = "none"
    for arg in args:
        if arg.startswith("--model-control-mode="):
            mode = arg.split("=", 1)[1]
    if mode == "explicit":
        present = {a.split("=", 1)[1] for a in args if a.startswith("--load-model=")}
        args += [f"--load-model={name}" for name in models if name not in present]
    if not any(a.startswith("--model-load-thread-count") for a in args):
        args.append("--model-load-thread-count=1")
    return tuple(args)


def repository_mount(facts: ContainerFacts, mount_point: str) -> Mount:
    """The container's mount of the model repository; an error when `up` mounts it elsewhere."""
    for mount in facts.mounts:
        if mount.target.rstrip("/") == mount_point.rstrip("/"):
            return mount
    raise ModelwizError(
        f"the container does not mount the model repository at {mount_point}",
        hint="run `modelwiz up` once to check the repository, then export again",
    )


# --- from the repository on disk -----------------------------------------------------------------


def weight_files(folder: Path) -> tuple[tuple[str, ...], int]:
    """The files of a finished download (relative paths, sorted) and their total size.

    The download's own completeness marker lists exactly what it fetched; without one (a folder
    filled another way) the folder's files are taken, leaving out hidden ones (download state).
    """
    from wizard.download import read_marker

    marker = read_marker(folder)
    if marker:
        files = {str(k): int(v) for k, v in marker["files"].items()}
        return tuple(sorted(files)), sum(files.values())
    names: list[str] = []
    total = 0
    if not folder.is_dir():
        return (), 0
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder)
        if any(part.startswith(".") for part in rel.parts) or not path.is_file():
            continue
        names.append(rel.as_posix())
        total += path.stat().st_size
    return tuple(names), total


def _exported_model(repo: Repository, name: str) -> tuple[ExportedModel | None, str | None]:
    """The model as a cluster needs it, or why it cannot be exported."""
    from wizard.model_config import CONFIG_FILE, MODEL_JSON

    found = repo.model(name)
    if found is None:
        return None, f"{name}: not in the repository"
    entry = found.entry
    if entry is None:
        return None, f"{name}: not made by modelwiz, so its source is unknown"
    if not found.ready:
        why = "; ".join(found.problems) or found.state
        return None, f"{name}: not ready ({why}); finish it with `modelwiz add` first"
    if not entry.revision:
        return None, (
            f"{name}: copied from the local folder {entry.source}; a cluster cannot download "
            f"it (copy it into the volume at {repo.weights_path_in_container(entry)})"
        )
    folder = repo.model_dir(name)
    config = (folder / CONFIG_FILE).read_text(encoding="utf-8")
    model_json = (folder / MODEL_JSON).read_text(encoding="utf-8")
    try:
        loads = json.loads(model_json).get("model")
    except (ValueError, AttributeError):
        return None, f"{name}: 1/model.json is not a JSON object"
    wanted = repo.weights_path_in_container(entry)
    if loads != wanted:
        return None, f"{name}: 1/model.json loads {loads!r}, not the downloaded weights at {wanted}"
    files, size = weight_files(repo.weights_dir(entry))
    if not files:
        return None, f"{name}: its weights folder {repo.weights_dir(entry)} is empty"
    return ExportedModel(
        name=name,
        source=entry.source,
        revision=entry.revision,
        weights_dir=entry.weights,
        weights_bytes=size or entry.plan.weights_bytes,
        config_pbtxt=config,
        model_json=model_json,
        files=files,
    ), None


def exportable_models(repo: Repository) -> tuple[tuple[ExportedModel, ...], tuple[str, ...]]:
    """The repository's models a cluster or a boot unit can serve, and why the others are left out."""
    models: list[ExportedModel] = []
    skipped: list[str] = []
    for found in repo.models():
        model, why = _exported_model(repo, found.name)
        if model is not None:
            models.append(model)
        elif why:
            skipped.append(why)
    if not models:
        raise ModelwizError(
            f"no model in {repo.root} can be exported" + (f" ({skipped[0]})" if skipped else ""),
            hint="add one with `modelwiz add MODEL` and let its download finish",
        )
    return tuple(models), tuple(skipped)


@dataclass(frozen=True)
class LaunchChoices:
    """What `modelwiz up` takes on its command line and the export must take the same way."""

    image: str | None = None
    name: str | None = None
    listen: str | None = None
    http_port: int | None = None
    grpc_port: int | None = None
    metrics_port: int | None = None
    rootless: bool | None = None  # None: this user (root runs rootful podman)


def launch_kwargs(repo: Repository, models: tuple[str, ...], choices: LaunchChoices = LaunchChoices()) -> dict:
    """What `modelwiz up` gives podman-py for this repository, built the way `up` builds it:
    `read_launch_inputs` for devices, image and mount point, then `launch_spec_for`."""
    from wizard import preflight
    from wizard.container import create_kwargs, launch_spec_for
    from wizard.launch_inputs import read_launch_inputs

    inputs = read_launch_inputs(repo.root)
    optional = {
        key: value
        for key, value in (
            ("name", choices.name),
            ("listen", choices.listen),
            ("http_port", choices.http_port),
            ("grpc_port", choices.grpc_port),
            ("metrics_port", choices.metrics_port),
        )
        if value is not None
    }
    rootless = os.geteuid() != 0 if choices.rootless is None else choices.rootless
    spec = launch_spec_for(
        repo.root,
        models=list(models),
        devices=list(inputs.devices),
        image=preflight.choose_image(choices.image or inputs.image, None),
        mount_point=inputs.mount_point,
        rootless=rootless,
        # `up` disables labels whenever podman reports SELinux enabled; without a podman connection
        # here, an SELinux filesystem on this host is the same signal.
        selinux_enforcing=preflight.selinux_enforcing() or Path("/sys/fs/selinux/enforce").exists(),
        **optional,
    )
    return create_kwargs(spec)


def serving_facts(
    repo: Repository, choices: LaunchChoices = LaunchChoices(), *, kwargs: Mapping[str, Any] | None = None
) -> ServingFacts:
    """Everything an export needs, from the repository and the container `modelwiz up` creates."""
    models, skipped = exportable_models(repo)
    if kwargs is None:
        kwargs = launch_kwargs(repo, tuple(m.name for m in models), choices)
    try:
        container = container_facts(kwargs)
    except ValueError as error:
        raise ModelwizError(
            f"cannot export this container: {error}", hint="report this: the export is behind `modelwiz up`"
        ) from None
    mount_point = repo.manifest.mount_point
    repository_mount(container, mount_point)
    return ServingFacts(
        container=container,
        mount_point=mount_point,
        models=models,
        gpus=tuple(repo.used_devices()),
        skipped=skipped,
    )
