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
    LABEL_OPENAI,
    NO_OPENAI,
    PODMAN_RLIMIT_DEFAULT,
    LaunchSpec,
    Ulimit,
    default_ulimits,
    launch_spec_for,
    openai_unavailable,
    parse_openai_label,
)
from wizard.errors import UsageError
from wizard.manifest import load_manifest
from wizard.openai_models import ChatServer, chat_server
from wizard.preflight import choose_image, selinux_enforcing
from wizard.repository import Repository
from wizard.serve_options import DEFAULTS, ServeOptions, merge_layers, options_from_labels, running_labels

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
    running_chat_model: str | None = None  # the model whose tokenizer that container's OpenAI API uses
    nofile_max: int = PODMAN_RLIMIT_DEFAULT  # hard limits the container's process may get
    nproc_max: int = PODMAN_RLIMIT_DEFAULT

    @property
    def ulimits(self) -> tuple[Ulimit, ...]:
        return default_ulimits(rootless=self.rootless, nofile=self.nofile_max, nproc=self.nproc_max)

    @classmethod
    def from_podman(cls, client: Any, repository: Path, driver_version: str | None) -> HostFacts:
        """As the podman service that will run the container sees this host."""
        labels = running_labels(client, repository)
        openai = parse_openai_label(labels.get(LABEL_OPENAI, "")) if labels else None
        return cls(
            rootless=podman_conn.is_rootless(client),
            selinux=selinux_enforcing() or podman_conn.selinux_enabled(client),
            driver_version=driver_version,
            running=options_from_labels(labels) if labels else None,
            running_chat_model=openai.chat_model if openai else None,
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
    # `--openai-port` alone turns the API on again over a running container's --no-openai.
    openai = chosen.openai is not False or (options.openai is None and options.openai_port is not None)
    image = choose_image(chosen.image, host.driver_version)
    openai_port = chosen.openai_port
    if openai and merge_layers({"running": host.running, "flags": options}).openai_port is None:
        # The default OpenAI port gives way to a port the user chose for something else.
        taken = {chosen.http_port, chosen.grpc_port, chosen.metrics_port}
        while openai_port in taken:
            openai_port += 1
    chat: ChatServer | None = None
    if openai and openai_unavailable(image) is None:
        # A re-run keeps the running server's tokenizer while its model is still served, so adding
        # a model never takes chat away from the models that had it.
        chat = chat_server(inputs.root, inputs.mount_point, inputs.models, keep=host.running_chat_model)
    return launch_spec_for(
        inputs.root,
        models=inputs.models,
        devices=inputs.devices,
        image=image,
        mount_point=inputs.mount_point,
        name=chosen.name,
        listen=chosen.listen,
        http_port=chosen.http_port,
        grpc_port=chosen.grpc_port,
        metrics_port=chosen.metrics_port,
        ulimits=host.ulimits,
        selinux_enforcing=host.selinux,
        openai_port=openai_port if openai else None,
        tokenizer=chat.tokenizer if chat else None,
        chat_model=chat.chat_model if chat else None,
        openai_off=None if openai else NO_OPENAI,
        completions_only=tuple((m.name, m.reason) for m in chat.completions_only) if chat else (),
    )
