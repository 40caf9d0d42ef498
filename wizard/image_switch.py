"""Serve a repository with another Triton image (`modelwiz up --image REF`).

model.json is vLLM's engine arguments, so it belongs to one vLLM release: the image's engine (V0 up
to 25.09, V1 after) and the keys that release accepts. When the image changes, every modelwiz
model's files are rendered again for the new vLLM and checked against it, the way `add` writes
them: a hand-edited file is kept (modelwiz's version goes beside it as `<file>.modelwiz-new`), but
it must still load on the new vLLM. The new image is then recorded in the manifest.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from wizard.engine_args import EngineArgsError, resolve_version
from wizard.images import ImageInfo, find_image
from wizard.manifest import STATE_COMPLETE, load_manifest
from wizard.model_config import MODEL_JSON, ConfigError, refuse_unservable, validate_model_json
from wizard.repository import Repository

KEPT = ("edited", "unrecorded")  # file_status values of files modelwiz does not overwrite


def prepare_for_image(repository: Path, image_ref: str | None) -> tuple[str, ...]:
    """Before `up`: with an image asked for, render the files for it (`switch_image`); without,
    check that the recorded image can serve the files as they are (`check_files`)."""
    if image_ref:
        return switch_image(repository, image_ref)
    check_files(repository)
    return ()


def check_files(repository: Path) -> None:
    """ConfigError when the repository's recorded image would refuse its files (a model.json written
    for another vLLM, replicas on 25.03), with the command that renders them for it."""
    if load_manifest(Path(repository)) is None:
        return
    repo = Repository.open(Path(repository))
    info = find_image(repo.manifest.image) if repo.manifest.image else None
    if info is None:
        return
    entries = [m for m in repo.manifest.models if m.state == STATE_COMPLETE]
    try:
        refuse_unservable([e.plan for e in entries], repo.used_devices(), info)
        for entry in entries:
            path = repo.model_dir(entry.name) / MODEL_JSON
            if path.is_file():
                try:
                    validate_model_json(path.read_text(encoding="utf-8"), info.vllm_release)
                except (ConfigError, EngineArgsError) as error:
                    raise ConfigError(f"{entry.name}/{MODEL_JSON}: {error.message}") from None
    except ConfigError as error:
        raise ConfigError(
            error.message,
            hint=f"render the files for it with `modelwiz up --image {info.short_tag}`, "
            "or pick a newer image with --image",
        ) from None


def switch_image(repository: Path, image_ref: str) -> tuple[str, ...]:
    """Re-render and re-check the repository's model files for `image_ref`'s vLLM and record the
    image. Returns notes for the user. Nothing happens for a repository modelwiz did not make or
    for an image outside modelwiz's table (its vLLM is unknown: the files stay as written).
    ConfigError / EngineArgsError when the image cannot serve them."""
    info = find_image(image_ref)
    if info is None or load_manifest(Path(repository)) is None:
        return ()
    repo = Repository.open(Path(repository))
    recorded = find_image(repo.manifest.image) if repo.manifest.image else None
    resolve_version(info.vllm_release)  # refuses a vLLM too old for modelwiz's model.json
    with repo.lock():
        entries = [m for m in repo.manifest.models if m.state == STATE_COMPLETE]
        devices = repo.used_devices()
        refuse_unservable([e.plan for e in entries], devices, info)
        _check_kept_files(repo, [e.name for e in entries if repo.file_status(e, MODEL_JSON) in KEPT], info)
        reports = repo.write_models(entries, vllm_version=info.vllm_release, devices=devices) if entries else ()
        repo.save(replace(repo.manifest, image=info.tag))
    notes = [n for r in reports for n in r.notes]
    rewritten = [r.name for r in reports if r.written]
    if recorded == info and not rewritten:
        return tuple(notes)
    was = recorded.short_tag if recorded else (repo.manifest.image or "no image")
    what = f"{', '.join(rewritten)} rewritten" if rewritten else "no file changed"
    notes.append(
        f"image {was} -> {info.short_tag} (vLLM {info.vllm_release}, {info.engine} engine): "
        f"model files rendered again for it ({what})"
    )
    return tuple(notes)


def _check_kept_files(repo: Repository, names: list[str], info: ImageInfo) -> None:
    """A hand-edited model.json stays what Triton loads: it must load on the new vLLM too."""
    for name in names:
        path = repo.model_dir(name) / MODEL_JSON
        try:
            validate_model_json(path.read_text(encoding="utf-8"), info.vllm_release)
        except (ConfigError, EngineArgsError) as error:
            raise ConfigError(
                f"{name}/{MODEL_JSON} was edited by hand and would not load on {info.short_tag}: {error.message}",
                hint=f"compare it with {name}/{MODEL_JSON}.modelwiz-new and take what that image needs",
            ) from None
