"""What `modelwiz up` starts, read from a model repository: models, devices, image, mount point.

With a manifest (`modelwiz.toml`, written by `modelwiz add`): the models a server may load
(modelwiz's complete ones and foreign ones that parse; never a half-downloaded one), and exactly
the devices the repository's config.pbtxt files number their GPUs against (container-local ids
depend on that set and its order). Without a manifest (a repository modelwiz did not make): every
`<repo>/*/config.pbtxt`, with every GPU mounted.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from wizard.container import ALL_DEVICES, DEFAULT_MOUNT_POINT
from wizard.errors import UsageError
from wizard.manifest import load_manifest
from wizard.repository import Repository


@dataclass(frozen=True)
class LaunchInputs:
    models: tuple[str, ...]
    devices: tuple[str, ...]
    image: str | None
    mount_point: str
    from_manifest: bool


def read_launch_inputs(repository: Path) -> LaunchInputs:
    repository = Path(repository)
    if not repository.is_dir():
        raise UsageError(f"model repository {repository} does not exist", hint="pass --repository DIR")
    manifest = load_manifest(repository)
    if manifest is None:
        names = sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))
        return LaunchInputs(
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
        models=repo.ready_models(),
        devices=repo.used_devices() or (ALL_DEVICES,),
        image=repo.manifest.image,
        mount_point=repo.manifest.mount_point,
        from_manifest=True,
    )
