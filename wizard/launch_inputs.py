"""What `modelwiz up` starts, read from a model repository: models, devices, image, mount point.

ONE function, `read_launch_inputs`, so the manifest format can change in one place. It reads
`<repo>/modelwiz.toml` when present (top-level `image` and `mount_point`; models as `[models.NAME]`
tables or `[[models]]` with `name`, each with `devices` = CDI ids, directly or in its `plan`).
Without a manifest it scans `<repo>/*/config.pbtxt` and mounts every GPU.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.container import ALL_DEVICES, DEFAULT_MOUNT_POINT
from wizard.errors import UsageError

MANIFEST = "modelwiz.toml"


@dataclass(frozen=True)
class LaunchInputs:
    models: tuple[str, ...]
    devices: tuple[str, ...]
    image: str | None
    mount_point: str
    from_manifest: bool


def _model_rows(models: Any) -> list[tuple[str, dict[str, Any]]]:
    if isinstance(models, dict):
        return [(str(name), row if isinstance(row, dict) else {}) for name, row in models.items()]
    if isinstance(models, list):
        return [(str(row.get("name", "")), row) for row in models if isinstance(row, dict)]
    return []


def read_launch_inputs(repository: Path) -> LaunchInputs:
    repository = Path(repository)
    if not repository.is_dir():
        raise UsageError(f"model repository {repository} does not exist", hint="pass --repository DIR")
    manifest = repository / MANIFEST
    if manifest.is_file():
        try:
            data = tomllib.loads(manifest.read_text(encoding="utf-8"))
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as error:
            raise UsageError(f"{manifest} is not valid TOML: {error}", hint="fix or remove it") from error
        models: list[str] = []
        devices: set[str] = set()
        for name, row in _model_rows(data.get("models")):
            if not name:
                continue
            models.append(name)
            plan = row.get("plan") if isinstance(row.get("plan"), dict) else row
            devices.update(str(d) for d in plan.get("devices") or ())
        return LaunchInputs(
            models=tuple(models),
            devices=tuple(sorted(devices)) or (ALL_DEVICES,),
            image=data.get("image") or None,
            mount_point=str(data.get("mount_point") or DEFAULT_MOUNT_POINT),
            from_manifest=True,
        )
    names = sorted(p.parent.name for p in repository.glob("*/config.pbtxt"))
    return LaunchInputs(
        models=tuple(names),
        devices=(ALL_DEVICES,),
        image=None,
        mount_point=DEFAULT_MOUNT_POINT,
        from_manifest=False,
    )
