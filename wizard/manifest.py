"""The repository manifest, `<repository>/modelwiz.toml`: what modelwiz made there.

It records the image, the mount point, and per model: the source (Hub repo id or local folder),
the revision (commit sha), the weights folder, the plan (ModelPlan.to_json shape), the sha256 of
every file modelwiz wrote, and the state (`downloading` until the weights and files are complete).
Read with tomllib, written with tomlkit so a user's comments and layout survive; saved atomically.

`pending` holds the hashes of files about to be (re)written: a file whose hash matches either
`files` or `pending` is modelwiz's own, so a crash between the two manifest saves around a write
never makes modelwiz's own file look hand-edited.
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path, PurePosixPath
from typing import Any

from wizard.container_defaults import DEFAULT_MOUNT_POINT
from wizard.errors import ModelwizError
from wizard.fsutil import atomic_write_text
from wizard.naming import check_name
from wizard.plan_types import ModelPlan

MANIFEST_NAME = "modelwiz.toml"
MANIFEST_VERSION = 1

STATE_DOWNLOADING = "downloading"
STATE_COMPLETE = "complete"
STATE_REMOVING = "removing"
STATES = (STATE_DOWNLOADING, STATE_COMPLETE, STATE_REMOVING)

_HEADER = (
    "# modelwiz manifest: the models modelwiz set up in this Triton model repository.\n"
    "# modelwiz reads it on every run (modelwiz status / add / remove). Comments are kept.\n"
)
_SHA_RE = re.compile(r"^[0-9a-f]{64}$")
_TOP_KEYS = ("version", "image", "mount_point")
_MODEL_KEYS = ("source", "revision", "weights", "state", "plan", "files", "pending", "measured")


class ManifestError(ModelwizError):
    """The manifest cannot be read or does not make sense."""


@dataclass(frozen=True)
class ManifestModel:
    name: str  # the Triton model name (= folder)
    source: str  # Hub repo id, or the local folder it was copied from
    weights: str  # weights folder name inside <repository>/<name>/
    plan: ModelPlan
    state: str = STATE_DOWNLOADING  # downloading | complete | removing
    revision: str | None = None  # the Hub commit sha (None for a local folder)
    files: Mapping[str, str] = field(default_factory=dict)  # relative path -> sha256
    pending: Mapping[str, str] = field(default_factory=dict)  # about to be written
    measured: Mapping[str, float] = field(default_factory=dict)  # what vLLM reported at the last load

    @property
    def complete(self) -> bool:
        return self.state == STATE_COMPLETE


@dataclass(frozen=True)
class Manifest:
    version: int = MANIFEST_VERSION
    image: str | None = None
    mount_point: str = DEFAULT_MOUNT_POINT
    models: tuple[ManifestModel, ...] = ()
    # The parsed document, so saving keeps the user's comments. Not part of equality.
    document: Any = field(default=None, compare=False, repr=False)

    def get(self, name: str) -> ManifestModel | None:
        return next((m for m in self.models if m.name == name), None)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(m.name for m in self.models)

    def with_model(self, model: ManifestModel) -> Manifest:
        """Add `model`, or replace the entry with its name (keeping its position)."""
        if self.get(model.name) is None:
            return replace(self, models=(*self.models, model))
        return replace(self, models=tuple(model if m.name == model.name else m for m in self.models))

    def without_model(self, name: str) -> Manifest:
        return replace(self, models=tuple(m for m in self.models if m.name != name))


def manifest_path(repository: Path) -> Path:
    return Path(repository) / MANIFEST_NAME


def check_relative(path: str, what: str) -> str:
    """A relative path that stays inside its folder (no '..', no absolute, no empty parts)."""
    pure = PurePosixPath(path)
    if not path or "\\" in path or pure.is_absolute() or any(part in ("", ".", "..") for part in path.split("/")):
        raise ManifestError(f"{what} {path!r} would leave the model folder")
    return path


def _strip_none(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _strip_none(v) for k, v in value.items() if v is not None}
    if isinstance(value, (list, tuple)):
        return [_strip_none(v) for v in value if v is not None]
    return value


def _model_data(model: ManifestModel) -> dict[str, Any]:
    plan = model.plan.to_json()
    if not plan.get("extra"):
        plan.pop("extra", None)
    data: dict[str, Any] = {
        "source": model.source,
        "revision": model.revision,
        "weights": model.weights,
        "state": model.state,
        "plan": _strip_none(plan),
        "files": dict(sorted(model.files.items())),
        "pending": dict(sorted(model.pending.items())),
    }
    if not data["pending"]:
        del data["pending"]
    if model.measured:
        data["measured"] = dict(sorted(model.measured.items()))
    return {k: v for k, v in data.items() if v is not None}


def _model_from(name: str, data: Any, where: Path) -> ManifestModel:
    def bad(message: str) -> ManifestError:
        return ManifestError(f"{where}: model {name!r}: {message}", hint="fix the entry or remove it")

    if not isinstance(data, dict):
        raise bad("is not a table")
    try:
        check_name(name)
    except ModelwizError:
        raise bad("is not a valid model name") from None
    for key in ("source", "weights", "plan"):
        if key not in data:
            raise bad(f"has no {key!r}")
    state = data.get("state", STATE_DOWNLOADING)
    if state not in STATES:
        raise bad(f"state {state!r} is not one of {', '.join(STATES)}")
    weights = str(data["weights"])
    if "/" in weights or weights in ("", ".", "..", "1") or weights.startswith("."):
        raise bad(f"weights folder {weights!r} is not a plain folder name")
    hashes: dict[str, dict[str, str]] = {}
    for key in ("files", "pending"):
        table = data.get(key, {})
        if not isinstance(table, dict):
            raise bad(f"{key} is not a table")
        for path, sha in table.items():
            try:
                check_relative(str(path), "file")
            except ManifestError as error:
                raise bad(str(error)) from None
            if not isinstance(sha, str) or not _SHA_RE.match(sha):
                raise bad(f"{key}.{path} is not a sha256")
        hashes[key] = {str(k): str(v) for k, v in table.items()}
    try:
        plan = ModelPlan.from_json({**data["plan"], "name": name})
    except (KeyError, TypeError, ValueError) as error:
        raise bad(f"plan is incomplete ({type(error).__name__}: {error})") from None
    _check_plan(plan, bad)
    measured = data.get("measured", {})
    if not isinstance(measured, dict) or not all(
        isinstance(v, (int, float)) and not isinstance(v, bool) for v in measured.values()
    ):
        raise bad("measured is not a table of numbers")
    revision = data.get("revision")
    return ManifestModel(
        name=name,
        source=str(data["source"]),
        weights=weights,
        plan=plan,
        state=state,
        revision=str(revision) if revision else None,
        files=hashes["files"],
        pending=hashes["pending"],
        measured={str(k): v for k, v in measured.items()},
    )


_DEVICE_RE = re.compile(r"[0-9]+(:[0-9]+)?")  # a GPU index, or GPU:MIG for a MIG device


def _check_plan(plan: ModelPlan, bad: Callable[[str], ManifestError]) -> None:
    """Numbers and device ids a hand edit may have broken (nan, inf, a path for a GPU)."""
    util = plan.gpu_memory_utilization
    if not (math.isfinite(util) and 0 < util <= 1):
        raise bad(f"plan.gpu_memory_utilization = {util!r} is not a fraction between 0 and 1")
    for key in ("tensor_parallel_size", "max_model_len"):
        if getattr(plan, key) < 1:
            raise bad(f"plan.{key} = {getattr(plan, key)!r} must be at least 1")
    if not math.isfinite(plan.max_concurrency):
        raise bad(f"plan.max_concurrency = {plan.max_concurrency!r} is not a number")
    for device in plan.devices:
        if not _DEVICE_RE.fullmatch(device):
            raise bad(f"plan.devices holds {device!r}, which is not a GPU index")


def parse_manifest(text: str, where: Path) -> Manifest:
    import tomlkit

    hint = f"fix {where}, or move it aside to start a new manifest"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as error:
        raise ManifestError(f"{where} is not valid TOML: {error}", hint=hint) from None
    except RecursionError:
        raise ManifestError(f"{where} is nested too deeply to be a manifest", hint=hint) from None
    version = data.get("version", MANIFEST_VERSION)
    if not isinstance(version, int) or version < 1:
        raise ManifestError(f"{where}: version {version!r} is not a manifest version", hint=hint)
    if version > MANIFEST_VERSION:
        raise ManifestError(
            f"{where} was written by a newer modelwiz (manifest version {version})",
            hint="upgrade modelwiz to work with this repository",
        )
    mount = data.get("mount_point", DEFAULT_MOUNT_POINT)
    if not isinstance(mount, str) or not mount.startswith("/"):
        raise ManifestError(f"{where}: mount_point must be an absolute path", hint=hint)
    image = data.get("image")
    if image is not None and not isinstance(image, str):
        raise ManifestError(f"{where}: image must be a string", hint=hint)
    models_data = data.get("models", {})
    if not isinstance(models_data, dict):
        raise ManifestError(f"{where}: [models] is not a table", hint=hint)
    models = tuple(_model_from(name, entry, where) for name, entry in models_data.items())
    return Manifest(
        version=version,
        image=image,
        mount_point=mount.rstrip("/") or "/",
        models=models,
        document=tomlkit.parse(text),
    )


def load_manifest(repository: Path) -> Manifest | None:
    """The manifest of `repository`, or None when modelwiz has not written one there."""
    path = manifest_path(repository)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    except UnicodeDecodeError:
        raise ManifestError(f"{path} is not UTF-8 text", hint="move it aside to start a new one") from None
    return parse_manifest(text, path)


def _sync_table(table: Any, data: Mapping[str, Any], owned: tuple[str, ...] | None) -> None:
    """Make `table` hold `data`, editing in place so comments survive.

    Keys missing from `data` are deleted when `owned` is None (we own the whole table) or when
    they are in `owned`; other keys (a user's own) are left alone.
    """
    import tomlkit

    for key in list(table.keys()):
        if key not in data and (owned is None or key in owned):
            del table[key]
    for key, value in data.items():
        if isinstance(value, dict):
            if key not in table or not isinstance(table[key], dict):
                table[key] = tomlkit.table()
            _sync_table(table[key], value, None)
        else:
            if isinstance(value, float) and not math.isfinite(value):
                value = str(value)  # inf/nan: TOML has them, but keep the file plain
            if key not in table or table[key] != value:
                table[key] = value


def render_manifest(manifest: Manifest) -> str:
    import tomlkit

    # A copy of the user's document (Manifest stays immutable), or a new one.
    doc = tomlkit.parse(_HEADER if manifest.document is None else tomlkit.dumps(manifest.document))
    top: dict[str, Any] = {"version": manifest.version, "image": manifest.image, "mount_point": manifest.mount_point}
    _sync_table(doc, {k: v for k, v in top.items() if v is not None}, _TOP_KEYS)
    if "models" not in doc:
        doc["models"] = tomlkit.table(is_super_table=True)
    models = doc["models"]
    for name in list(models.keys()):
        if manifest.get(name) is None:
            del models[name]
    for model in manifest.models:
        if model.name not in models:
            models[model.name] = tomlkit.table()
        _sync_table(models[model.name], _model_data(model), _MODEL_KEYS)
    return tomlkit.dumps(doc)


def save_manifest(repository: Path, manifest: Manifest) -> Manifest:
    """Write the manifest atomically; returns it carrying the saved document."""
    path = manifest_path(repository)
    text = render_manifest(manifest)
    saved = parse_manifest(text, path)  # never write what we could not read back
    atomic_write_text(path, text)
    return saved
