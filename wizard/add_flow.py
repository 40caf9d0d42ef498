"""`modelwiz add` as plain core steps, shared by the CLI, the plain prompts and the TUI.

    proposal = prepare_add(repo, requests, inventory=...)   # names, joint plan, image, checks
    if confirm(proposal): result = execute_add(repo, proposal, ...)   # download, write
    launch_after_add(repo.root, result.names, on_event)      # start or update the server

The planner, the metadata loader and the downloader are parameters (the real ones are imported
lazily as defaults), so every step runs here without a GPU or the network.
"""

from __future__ import annotations

import re
import shutil
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from wizard.errors import ModelwizError, UsageError
from wizard.gpus import GpuInventory
from wizard.images import ImageInfo, find_image, pick_image
from wizard.local_weights import check_local_model, copy_local_model, is_local_source, local_size
from wizard.manifest import STATE_COMPLETE, ManifestModel
from wizard.model_config import MODEL_JSON, plan_devices, refuse_unservable
from wizard.naming import check_name, derive_name, unique_name
from wizard.plan_types import ModelPlan
from wizard.progress import ProgressCallback, ignore_progress
from wizard.repository import Repository, WriteReport, new_entry, weights_folder_for
from wizard.units import format_bytes

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# Free space to leave on the repository's filesystem beyond the download itself.
DISK_HEADROOM_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class AddRequest:
    source: str  # Hub repo id, or a local model folder
    name: str | None = None  # the Triton name; derived from the source when None
    max_model_len: int | None = None
    min_concurrency: int = 1  # full-length requests the KV cache must hold at once


@dataclass(frozen=True)
class AddEvent:
    """A step of the add flow, for the UI to show (progress of bytes comes as ProgressEvent)."""

    step: str  # "plan", "download", "write", "launch", "note"
    message: str
    model: str | None = None


EventCallback = Callable[[AddEvent], None]


def ignore_event(event: AddEvent) -> None:
    return None


@dataclass(frozen=True)
class NewModel:
    request: AddRequest
    plan: ModelPlan
    source: str  # normalised: the repo id, or the absolute local folder
    weights: str  # weights folder name
    local: bool
    resume: bool = False  # an earlier add of this model did not finish


@dataclass(frozen=True)
class PlanChange:
    old: ModelPlan
    new: ModelPlan


@dataclass(frozen=True)
class AddProposal:
    """Everything the user is asked to confirm."""

    repository: Path
    image: ImageInfo
    vllm_version: str
    new: tuple[NewModel, ...]
    changed: tuple[PlanChange, ...]  # existing models whose budgets change
    kept: tuple[ModelPlan, ...]  # existing models left as they are
    devices: tuple[str, ...]  # every device the repository will use
    download_bytes: int | None  # None when unknown
    warnings: tuple[str, ...] = ()
    plan: Any = None  # the planner's Plan (per-GPU budgets), for pictures

    @property
    def fits(self) -> bool:
        return all(m.plan.fits for m in self.new) and all(c.new.fits for c in self.changed)

    @property
    def plans(self) -> tuple[ModelPlan, ...]:
        return self.kept + tuple(c.new for c in self.changed) + tuple(n.plan for n in self.new)


@dataclass(frozen=True)
class AddResult:
    repository: Path
    names: tuple[str, ...]  # the models added (or finished)
    changed: tuple[str, ...]
    reports: tuple[WriteReport, ...]

    @property
    def notes(self) -> tuple[str, ...]:
        return tuple(n for r in self.reports for n in r.notes)

    @property
    def rewritten(self) -> tuple[str, ...]:
        """Models that were there before and whose config.pbtxt or model.json this add rewrote
        (a new budget, renumbered GPUs): a running server must load them again."""
        return tuple(r.name for r in self.reports if r.written and r.name not in self.names)


# ------------------------------------------------------------------------------------ names


def check_source(source: str) -> str:
    if not source or not source.strip():
        raise UsageError("MODEL is empty", hint="give a Hub repo id like meta-llama/Llama-2-7b-hf or a folder")
    if is_local_source(source):
        return str(check_local_model(source))
    if not _REPO_ID.match(source) or ".." in source:
        raise UsageError(
            f"{source!r} is neither a Hugging Face repo id nor a folder",
            hint="write it as owner/name, e.g. meta-llama/Llama-2-7b-hf",
        )
    return source


def resolve_requests(
    repo: Repository, requests: Sequence[AddRequest]
) -> tuple[list[tuple[AddRequest, str, str]], list[ManifestModel]]:
    """Split requests into new ones `(request, source, name)` and unfinished ones to resume.

    Names: the user's (checked; refused when taken), else derived from the source and made unique.
    """
    if not requests:
        raise UsageError("no MODEL given", hint="e.g. modelwiz add meta-llama/Llama-2-7b-hf")
    taken = set(repo.taken_names())
    fresh: list[tuple[AddRequest, str, str]] = []
    resume: list[ManifestModel] = []
    for request in requests:
        source = check_source(request.source)
        existing = [m for m in repo.manifest.models if m.source == source]
        if request.name is not None:
            name = check_name(request.name)
            entry = repo.manifest.get(name)
            if entry is not None and entry.source == source and not entry.complete:
                resume.append(entry)
                continue
            if name in taken:
                raise UsageError(f"the repository already has a model named {name!r}", hint="pick another --name")
        else:
            unfinished = [m for m in existing if not m.complete]
            if unfinished:
                resume.append(unfinished[0])
                continue
            if existing:
                raise UsageError(
                    f"{source} is already in the repository as {existing[0].name!r}",
                    hint="give --name to add another copy, or `modelwiz remove` it first",
                )
            name = unique_name(check_name(derive_name(source)), taken)
        if request.max_model_len is not None and request.max_model_len < 1:
            raise UsageError("--max-model-len must be a positive number of tokens")
        taken.add(name)
        fresh.append((request, source, name))
    return fresh, resume


# ------------------------------------------------------------------------------------ planning


def _budget(plan: ModelPlan) -> tuple[Any, ...]:
    """What a plan changes on the GPUs (the reason text and estimates aside)."""
    return (
        plan.tensor_parallel_size,
        round(plan.gpu_memory_utilization, 4),
        plan.max_model_len,
        plan.dtype,
        plan.kv_cache_dtype,
        plan.instance_group,
        plan_devices(plan),
    )


def placement_warnings(plans: Sequence[ModelPlan], devices: Sequence[str]) -> list[str]:
    """Multi-GPU (KIND_MODEL) engines run on the container's first GPUs, whatever the plan says."""
    out = []
    for plan in plans:
        if plan.instance_group.kind != "KIND_MODEL":
            continue
        first = tuple(devices[: plan.tensor_parallel_size])
        mine = tuple(sorted(plan_devices(plan), key=list(devices).index)) if plan_devices(plan) else first
        if mine != first:
            out.append(
                f"{plan.name}: vLLM puts a {plan.tensor_parallel_size}-GPU engine on the container's "
                f"first GPUs (host {', '.join(first)}), not on the planned {', '.join(mine)}"
            )
    return out


def choose_image(repo: Repository, inventory: GpuInventory, image_ref: str | None) -> ImageInfo:
    recorded = repo.manifest.image
    if image_ref and recorded and find_image(image_ref) != find_image(recorded):
        raise UsageError(
            f"this repository runs {recorded}; adding a model cannot switch it to {image_ref}",
            hint="leave out --image",
        )
    ref = recorded or image_ref
    if ref:
        info = find_image(ref)
        if info is None:
            raise UsageError(
                f"unknown Triton vLLM image {ref!r}",
                hint="use a tag like 26.07-vllm-python-py3 (see `modelwiz gpus` for the one this driver runs)",
            )
        return info
    info = pick_image(inventory.driver_version, inventory.gpu_kind)
    if info is None:
        raise ModelwizError(
            f"NVIDIA driver {inventory.driver_version} is older than every Triton vLLM image needs",
            hint="update the driver, or pick an image with --image",
        )
    return info


def _as_served(repo: Repository, plan: ModelPlan) -> ModelPlan:
    """The plan with the budget its model.json really has: a hand edit may have changed it, and
    the GPU memory the server uses is what the file says."""
    import json

    entry = repo.manifest.get(plan.name)
    if entry is None or repo.file_status(entry, MODEL_JSON) != "edited":
        return plan
    try:
        served = json.loads((repo.model_dir(plan.name) / MODEL_JSON).read_text(encoding="utf-8"))
        util = float(served["gpu_memory_utilization"])
    except (OSError, ValueError, KeyError, TypeError):
        return plan
    return replace(plan, gpu_memory_utilization=util) if 0 < util <= 1 else plan


def _meta_source(repo: Repository, entry: ManifestModel) -> str:
    """Where to read a deployed model's metadata: its own complete weights folder (no network),
    else where it came from."""
    weights = repo.weights_dir(entry)
    if entry.complete and (weights / "config.json").is_file():
        return str(weights)
    return entry.source


def _default_planner() -> Callable[..., Any]:
    from wizard.planner import plan_models

    return plan_models


def _default_meta_loader() -> Callable[[str], Any]:
    from wizard.model_meta import load_model_meta

    return load_model_meta


def _request_class() -> Any:
    from wizard.planner import ModelRequest

    return ModelRequest


def _refusal(plan: Any) -> ModelwizError:
    bad = [m for m in plan.models if not m.fits] or list(plan.models)
    reasons = "; ".join(f"{m.name}: {m.reason}" for m in bad if m.reason) or "the models do not fit the GPUs"
    suggestions = [s for m in bad for s in m.suggestions]
    return ModelwizError(
        f"does not fit: {reasons}",
        hint="; ".join(dict.fromkeys(suggestions)) or "try a smaller --max-model-len, fewer models, or more GPUs",
    )


def prepare_add(
    repo: Repository,
    requests: Sequence[AddRequest],
    *,
    inventory: GpuInventory,
    image_ref: str | None = None,
    planner: Callable[..., Any] | None = None,
    meta_loader: Callable[[str], Any] | None = None,
    request_factory: Callable[..., Any] | None = None,
    download_size: Callable[[str, Path], int | None] | None = None,
    on_event: EventCallback = ignore_event,
    refuse: bool = True,
    check_disk: bool = True,
    fill: bool = False,
    existing_running: bool | frozenset[str] = False,
) -> AddProposal:
    """Resolve names, plan jointly with the repository's models, and check disk space.

    `refuse=False` returns a proposal that does not fit (`.fits` false, reasons in the plans)
    instead of raising, for a UI that lets the user change it; `check_disk=False` skips the
    disk check (and the Hub calls sizing it needs). `fill` and `existing_running` are the
    planner's (leftover memory to KV cache; the deployed models are running now)."""
    from wizard.engine_args import resolve_version

    fresh, resume = resolve_requests(repo, requests)
    image = choose_image(repo, inventory, image_ref)
    vllm_version = image.vllm_release
    resolve_version(vllm_version)  # refuses a vLLM modelwiz cannot write model.json for
    existing = tuple(_as_served(repo, p) for p in repo.managed_plans())
    edited = {p.name for p in existing if repo.file_status(repo.manifest.get(p.name), MODEL_JSON) == "edited"}
    resumed = tuple(
        NewModel(
            AddRequest(m.source, m.name), m.plan, m.source, m.weights, local=is_local_source(m.source), resume=True
        )
        for m in resume
    )
    changed: list[PlanChange] = []
    new: list[NewModel] = list(resumed)
    planned = None
    kept: list[ModelPlan] = [p for p in existing if p.name not in {m.name for m in resume}]
    if fresh:
        planner = planner or _default_planner()
        meta_loader = meta_loader or _default_meta_loader()
        make_request = request_factory or _request_class()
        model_requests = []
        for request, source, name in fresh:
            on_event(AddEvent("plan", f"reading {source}", name))
            options = {"max_model_len": request.max_model_len}
            if request.min_concurrency != 1:
                options["min_concurrency"] = request.min_concurrency
            model_requests.append(make_request(meta_loader(source), name, **options))
        on_event(AddEvent("plan", "planning all models together"))
        options = {"fill": fill, "existing_running": existing_running} if fill or existing_running else {}
        plan = planner(inventory, model_requests, existing=existing, replan_existing=False, **options)
        if not plan.fits and existing:
            on_event(AddEvent("plan", "no room with the current budgets; planning all models again"))
            existing_meta = {
                plan.name: meta_loader(_meta_source(repo, repo.manifest.get(plan.name))) for plan in existing
            }
            replanned = planner(
                inventory,
                model_requests,
                existing=existing,
                replan_existing=True,
                existing_meta=existing_meta,
                **options,
            )
            if replanned.fits:
                plan = replanned
        if not plan.fits and refuse:
            raise _refusal(plan)
        planned = plan
        by_name = {m.name: m for m in plan.models}
        kept = []
        resumed_names = {m.name for m in resume}
        for old in existing:
            if old.name in resumed_names:
                continue  # finished below with the plan it was recorded with
            updated = by_name.get(old.name)
            if updated is None or _budget(updated) == _budget(old):
                kept.append(old)
            elif old.name in edited:
                raise ModelwizError(
                    f"fitting the new models needs a smaller budget for {old.name}, whose model.json "
                    "was edited by hand; modelwiz does not change it",
                    hint=f"lower gpu_memory_utilization in {repo.model_dir(old.name) / MODEL_JSON} yourself, "
                    "or move modelwiz's version (model.json.modelwiz-new) over it, then run again",
                )
            else:
                changed.append(PlanChange(old, replace(updated, model=old.model)))
        for request, source, name in fresh:
            model_plan = by_name.get(name)
            if model_plan is None:
                raise ModelwizError(f"the planner returned no plan for {name!r}", hint="report this")
            new.append(
                NewModel(
                    request,
                    replace(model_plan, model=source),
                    source,
                    weights_folder_for(source),
                    local=is_local_source(source),
                )
            )
    proposal_plans = kept + [c.new for c in changed] + [n.plan for n in new]
    devices = repo.used_devices(proposal_plans)
    refuse_unservable(proposal_plans, devices, image)
    warnings = placement_warnings(proposal_plans, devices)
    total = bytes_to_download(repo, new, download_size) if check_disk and all(n.plan.fits for n in new) else None
    if total is not None:
        free = shutil.disk_usage(repo.existing_ancestor()).free
        if total + DISK_HEADROOM_BYTES > free:
            raise ModelwizError(
                f"the weights need {format_bytes(total)} but {repo.root} has {format_bytes(free)} free",
                hint="free some space or use another --repository",
            )
    return AddProposal(
        repo.root,
        image,
        vllm_version,
        tuple(new),
        tuple(changed),
        tuple(kept),
        devices,
        total,
        tuple(warnings),
        plan=planned,
    )


def bytes_to_download(
    repo: Repository, new: Sequence[NewModel], download_size: Callable[[str, Path], int | None] | None
) -> int | None:
    total = 0
    for model in new:
        dest = repo.model_dir(model.plan.name) / model.weights
        if model.local:
            source = Path(model.source)
            if dest.exists() or source.stat().st_dev == repo.existing_ancestor().stat().st_dev:
                continue  # hard links: no extra space
            total += local_size(source)
            continue
        size = None
        if download_size is not None:
            size = download_size(model.source, dest)
        else:
            try:
                from wizard.download import plan_download
            except ImportError:
                return None
            size = plan_download(model.source, dest).bytes_to_fetch
        if size is None:
            return None
        total += size
    return total


# ------------------------------------------------------------------------------------ doing


def _default_downloader() -> Callable[..., Any]:
    from wizard.download import download_model

    return download_model


def execute_add(
    repo: Repository,
    proposal: AddProposal,
    *,
    downloader: Callable[..., Any] | None = None,
    on_event: EventCallback = ignore_event,
    on_progress: ProgressCallback = ignore_progress,
    cancel: threading.Event | None = None,
) -> AddResult:
    """Record, download, then write every file the new joint plan needs.

    The new models are in the manifest as `downloading` before any byte moves, so an interrupted
    add is resumed by running it again; they become `complete` only once weights and files are in.
    """
    if repo.manifest.image is None:
        repo.save(replace(repo.manifest, image=proposal.image.tag))
    new_names = {m.plan.name for m in proposal.new}
    for model in proposal.new:
        entry = repo.manifest.get(model.plan.name)
        if entry is None:
            repo.record(new_entry(model.plan, source=model.source, weights=model.weights))
        elif entry.plan != model.plan:
            # Recorded by an earlier, interrupted run of this add (or an earlier step of the
            # wizard): keep its state and pinned revision, take the plan now confirmed.
            repo.record(replace(entry, plan=model.plan))
    changed = [
        replace(entry, plan=change.new)
        for change in proposal.changed
        if (entry := repo.manifest.get(change.new.name)) is not None
    ]
    # Before any byte moves: the new budgets of the models already there (the new models' plans
    # count on them) and every complete model's GPU numbering for the new device set (the new
    # models are in the manifest already, so `up` mounts that set even if this add stops here).
    refresh = changed + [
        m
        for m in repo.manifest.models
        if m.state == STATE_COMPLETE and m.name not in new_names and m.name not in {e.name for e in changed}
    ]
    reports: list[WriteReport] = []
    if refresh:
        if changed:
            on_event(AddEvent("write", f"applying the new budgets of {', '.join(e.name for e in changed)}"))
        reports += repo.write_models(refresh, vllm_version=proposal.vllm_version, devices=proposal.devices)
    revisions: dict[str, str | None] = {}
    for model in proposal.new:
        name = model.plan.name
        dest = repo.model_dir(name) / model.weights
        dest.parent.mkdir(parents=True, exist_ok=True)
        entry = repo.manifest.get(name)
        if entry is not None and entry.complete and dest.is_dir():
            revisions[name] = entry.revision  # fetched by an earlier step; nothing to do
            continue
        if model.local:
            on_event(AddEvent("download", f"linking {model.source} into the repository", name))
            copy_local_model(Path(model.source), dest, on_progress=on_progress, cancel=cancel)
            revisions[name] = None
        else:
            on_event(AddEvent("download", f"downloading {model.source}", name))
            download = downloader or _default_downloader()
            entry = repo.manifest.get(name)
            result = download(
                model.source, dest, revision=entry.revision if entry else None, on_progress=on_progress, cancel=cancel
            )
            revisions[name] = getattr(result, "sha", None)
            if revisions[name] and entry is not None and entry.revision != revisions[name]:
                # Record the commit as soon as it is known, so a resume fetches the same one.
                repo.record(replace(entry, revision=revisions[name]))
    entries: list[ManifestModel] = []
    for model in proposal.new:
        entries.append(repo.manifest.get(model.plan.name))  # type: ignore[arg-type]
    # The device set may have changed: every model's container-local GPU ids are refreshed.
    touched = {e.name for e in entries}
    entries += [m for m in repo.manifest.models if m.name not in touched and m.state == STATE_COMPLETE]
    on_event(AddEvent("write", f"writing the model repository {repo.root}"))
    final = repo.write_models(entries, vllm_version=proposal.vllm_version, devices=proposal.devices, complete=revisions)
    # One report per model: what either write did to it.
    earlier = {r.name: r for r in reports}
    reports = [_merge_reports(earlier.pop(r.name), r) if r.name in earlier else r for r in final]
    reports += earlier.values()
    for report in reports:
        for note in report.notes:
            on_event(AddEvent("note", note, report.name))
    return AddResult(
        repo.root,
        tuple(m.plan.name for m in proposal.new),
        tuple(c.new.name for c in proposal.changed),
        tuple(reports),
    )


def _merge_reports(first: WriteReport, second: WriteReport) -> WriteReport:
    return WriteReport(
        first.name,
        tuple(dict.fromkeys(first.written + second.written)),
        tuple(u for u in second.unchanged if u not in first.written),
        tuple(dict.fromkeys(first.kept + second.kept)),
        tuple(dict.fromkeys(first.notes + second.notes)),
    )


def launch_after_add(
    repository: Path,
    names: Sequence[str],
    *,
    gpus_spec: str | None = None,
    on_event: EventCallback = ignore_event,
    on_progress: ProgressCallback = ignore_progress,
    confirm: Callable[[str], bool] = lambda question: False,
    reload: Sequence[str] = (),
    options: Any = None,
) -> Any:
    """Start the server, or make the running one load `names` (the others stay loaded).

    `reload`: existing models whose budgets the add changed (AddResult.changed); a running server
    loads them again. Returns wizard.serve.Serving. A change that needs a restart (other GPUs,
    other image) is put to `confirm` first.
    """
    from wizard.serve import ServeOptions, start_server

    on_event(AddEvent("launch", f"starting or updating the Triton server for {', '.join(names)}"))
    return start_server(
        repository,
        gpus_spec=gpus_spec,
        options=options or ServeOptions(),
        on_event=lambda e: on_event(AddEvent("launch", e.message, getattr(e, "model", None))),
        on_progress=on_progress,
        confirm=confirm,
        reload=reload,
    )


# ------------------------------------------------------------------------------------ text


def plan_summary(plan: ModelPlan) -> str:
    """`TP 1, util 0.45, max_model_len 4096, KIND_GPU on 0` (one line for lists)."""
    where = ", ".join(plan_devices(plan)) or "?"
    text = (
        f"TP {plan.tensor_parallel_size}, util {plan.gpu_memory_utilization:.2f}, "
        f"max_model_len {plan.max_model_len}, {plan.instance_group.kind} on {where}"
    )
    if plan.dtype:
        text += f", {plan.dtype}"
    return text


def describe_proposal(proposal: AddProposal) -> list[str]:
    """The lines to show before asking for confirmation."""
    lines = [
        f"Repository {proposal.repository}  (image {proposal.image.short_tag}, vLLM {proposal.image.vllm_release})"
    ]
    for model in proposal.new:
        verb = "finish" if model.resume else "add"
        lines.append(f"  {verb} {model.plan.name} <- {model.source}: {plan_summary(model.plan)}")
    for change in proposal.changed:
        lines.append(f"  CHANGE {change.new.name}: {plan_summary(change.old)}")
        lines.append(f"     to {' ' * len(change.new.name)} {plan_summary(change.new)}")
    for plan in proposal.kept:
        lines.append(f"  keep {plan.name}: {plan_summary(plan)}")
    if proposal.download_bytes is not None:
        lines.append(f"  download: {format_bytes(proposal.download_bytes)}")
    for warning in proposal.warnings:
        lines.append(f"  warning: {warning}")
    return lines
