"""What `modelwiz up` starts, and the one function that turns it into a `LaunchSpec`.

`read_launch_inputs` reads the repository. With a manifest (`modelwiz.toml`, written by
`modelwiz add`): the models a server may load (modelwiz's complete ones and foreign ones that
parse; never a half-downloaded one), and exactly the devices the repository's config.pbtxt files
number their GPUs against (container-local ids depend on that set and its order). Without a
manifest (a repository modelwiz did not make): every `<repo>/*/config.pbtxt`, with every GPU mounted.

`build_launch_spec(inputs, options, host)` is the container `up` runs, the exports write and the
wizard launches: the options merged in `serve_options.LAYER_ORDER`, then checked.
"""

from __future__ import annotations

import os
import resource
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard import podman_conn
from wizard.container import (
    ALL_DEVICES,
    DEFAULT_MOUNT_POINT,
    PODMAN_RLIMIT_DEFAULT,
    LaunchSpec,
    Ulimit,
    default_ulimits,
    launch_spec_for,
)
from wizard.errors import UsageError
from wizard.manifest import load_manifest
from wizard.preflight import choose_image, selinux_enforcing
from wizard.repository import Repository
from wizard.serve_options import DEFAULTS, ServeOptions, merge_layers, running_options

# Where the kernel says SELinux is on at all (enforcing or permissive).
SELINUX_FS = Path("/sys/fs/selinux/enforce")


@dataclass(frozen=True)
class LaunchInputs:
    root: Path
    models: tuple[str, ...]
    devices: tuple[str, ...]
    image: str | None
    mount_point: str
    from_manifest: bool

    @property
    def options(self) -> ServeOptions:
        """The manifest's layer of the serve options: the image the model.json files were written for."""
        return ServeOptions(image=self.image)


def read_launch_inputs(repository: Path) -> LaunchInputs:
    repository = Path(repository)
    if not repository.is_dir():
        raise UsageError(f"model repository {repository} does not exist", hint="pass --repository DIR")
    manifest = load_manifest(repository)
    if manifest is None:
        names = sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))
        return LaunchInputs(
            root=repository,
            models=tuple(names),
            devices=(ALL_DEVICES,),
            image=None,
            mount_point=DEFAULT_MOUNT_POINT,
            from_manifest=False,
        )
    return launch_inputs_for(Repository(repository.expanduser().absolute(), manifest))


def launch_inputs_for(repo: Repository) -> LaunchInputs:
    """What a repository modelwiz manages asks for (its manifest already read)."""
    return LaunchInputs(
        root=repo.root,
        models=repo.ready_models(),
        devices=repo.used_devices() or (ALL_DEVICES,),
        image=repo.manifest.image,
        mount_point=repo.manifest.mount_point,
        from_manifest=True,
    )


@dataclass(frozen=True)
class HostFacts:
    """What the machine that runs the container decides about it."""

    rootless: bool  # rootless podman may not raise memlock
    selinux: bool  # SELinux on: GPUs need label=disable
    driver_version: str | None = None  # None: described GPUs, or NVML could not say
    running: ServeOptions | None = None  # the modelwiz container already serving this repository
    nofile_max: int = PODMAN_RLIMIT_DEFAULT  # hard limits the container's process may get
    nproc_max: int = PODMAN_RLIMIT_DEFAULT

    @property
    def ulimits(self) -> tuple[Ulimit, ...]:
        return default_ulimits(rootless=self.rootless, nofile=self.nofile_max, nproc=self.nproc_max)

    @classmethod
    def from_podman(cls, client: Any, repository: Path, driver_version: str | None) -> HostFacts:
        """As the podman service that will run the container sees this host."""
        return cls(
            rootless=podman_conn.is_rootless(client),
            selinux=selinux_enforcing() or podman_conn.selinux_enabled(client),
            driver_version=driver_version,
            running=running_options(client, repository),
            nofile_max=_hard_limits()[0],
            nproc_max=_hard_limits()[1],
        )

    @classmethod
    def local(cls, driver_version: str | None = None) -> HostFacts:
        """This host, without asking podman (the exports): this user's rootlessness, and an SELinux
        filesystem as the sign that podman would report SELinux enabled."""
        return cls(
            rootless=os.geteuid() != 0,
            selinux=selinux_enforcing() or SELINUX_FS.exists(),
            driver_version=driver_version,
            nofile_max=_hard_limits()[0],
            nproc_max=_hard_limits()[1],
        )


def _hard_limits() -> tuple[int, int]:
    """This process's hard nofile/nproc limits. The podman service runs on this host with the
    same or higher ones in the usual setups (a user service or systemd's podman.service), so
    asking for these never asks for more than the container's runtime may set."""

    def hard(kind: int) -> int:
        limit = resource.getrlimit(kind)[1]
        return PODMAN_RLIMIT_DEFAULT if limit == resource.RLIM_INFINITY else limit

    return hard(resource.RLIMIT_NOFILE), hard(resource.RLIMIT_NPROC)


def build_launch_spec(inputs: LaunchInputs, options: ServeOptions, host: HostFacts) -> LaunchSpec:
    """The container for the repository: `options` are the flags layer, merged over the running
    container, the manifest and the defaults (serve_options.LAYER_ORDER)."""
    chosen = merge_layers({"defaults": DEFAULTS, "manifest": inputs.options, "running": host.running, "flags": options})
    # DEFAULTS sets every field but the image.
    assert chosen.name and chosen.listen and chosen.http_port and chosen.grpc_port and chosen.metrics_port
    return launch_spec_for(
        inputs.root,
        models=inputs.models,
        devices=inputs.devices,
        image=choose_image(chosen.image, host.driver_version),
        mount_point=inputs.mount_point,
        name=chosen.name,
        listen=chosen.listen,
        http_port=chosen.http_port,
        grpc_port=chosen.grpc_port,
        metrics_port=chosen.metrics_port,
        ulimits=host.ulimits,
        selinux_enforcing=host.selinux,
    )
