"""`modelwiz add` as plain core steps; `wizard.session.AddSession` drives them for the CLI and the wizards.

    proposal = prepare_add(repo, requests, inventory=...)   # names, joint plan, image, checks
    if confirm(proposal): result = execute_add(repo, proposal, ...)   # download, write

The planner, the model reader (metadata and download plans) and the downloader are parameters
with the real ones as defaults; tests pass fakes with the same signatures, so every step runs
here without a GPU or the network.
"""

from __future__ import annotations

import json
import re
import shutil
import threading
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Literal, Protocol

from wizard.calibration import Calibration, load_calibration
from wizard.download import DownloadPlan, DownloadResult, download_model, plan_from_model
from wizard.engine_args import resolve_version
from wizard.errors import ModelwizError, UsageError
from wizard.gpus import GpuInventory
from wizard.hub import HubModel, lookup_model
from wizard.images import ImageInfo, find_image, pick_image
from wizard.local_weights import check_local_model, copy_local_model, is_local_source, local_size
from wizard.manifest import STATE_COMPLETE, ManifestModel
from wizard.model_config import MODEL_JSON, plan_devices, refuse_unservable
from wizard.model_meta import ModelMeta, load_model_meta, meta_from_hub
from wizard.naming import check_name, derive_name, unique_name
from wizard.plan_render import plan_summary
from wizard.plan_types import ModelPlan
from wizard.planner import ModelRequest, Plan, plan_models
from wizard.progress import ProgressCallback, ignore_progress
from wizard.repository import Repository, WriteReport, new_entry, weights_folder_for
from wizard.units import format_bytes

_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)?$")
# Free space to leave on the repository's filesystem beyond the download itself.
DISK_HEADROOM_BYTES = 2 * 1024**3


@dataclass(frozen=True)
class AddRequest:
    source: str  # Hub repo id, or a local model folder
    name: str | None = None  # the Triton name; None: derived from the source, or an unfinished add resumed
    max_model_len: int | None = None
    min_concurrency: int = 1  # full-length requests the KV cache must hold at once
    revision: str | None = None  # the Hub commit to plan and download; None: the newest (main)


AddStep = Literal["plan", "download", "write", "launch", "note"]


@dataclass(frozen=True)
class AddEvent:
    """A step of the add flow, for the UI to show (progress of bytes comes as ProgressEvent)."""

    step: AddStep
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
    download: DownloadPlan | None = None  # what to fetch, at which commit (None: a local folder, or offline)

    @property
    def revision(self) -> str | None:
        """The commit planned, and the one downloaded."""
        return self.download.sha if self.download is not None else None


@dataclass(frozen=True)
class BudgetChange:
    """A model already in the repository whose budget the joint plan changes."""

    old: ModelPlan
    new: ModelPlan


@dataclass(frozen=True)
class AddProposal:
    """Everything the user is asked to confirm."""

    repository: Path
    image: ImageInfo
    vllm_version: str
    new: tuple[NewModel, ...]
    changed: tuple[BudgetChange, ...]  # existing models whose budgets change
    kept: tuple[ModelPlan, ...]  # existing models left as they are
    devices: tuple[str, ...]  # every device the repository will use
    download_bytes: int | None  # None when unknown
    warnings: tuple[str, ...] = ()
    plan: Plan | None = None  # the planner's Plan (per-GPU budgets), for pictures

    @property
    def fits(self) -> bool:
        return all(m.plan.fits for m in self.new) and all(c.new.fits for c in self.changed)

    @property
    def plans(self) -> tuple[ModelPlan, ...]:
        return self.kept + tuple(c.new for c in self.changed) + tuple(n.plan for n in self.new)

    @property
    def names(self) -> dict[str, str]:
        """The source each new model was asked for as (repo id or folder) -> its Triton name."""
        return {n.request.source: n.plan.name for n in self.new}


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


# ------------------------------------------------------------------------------------ collaborators


class Planner(Protocol):
    """`wizard.planner.plan_models`'s signature."""

    def __call__(
        self,
        inventory: GpuInventory,
        requests: Sequence[ModelRequest],
        *,
        existing: Sequence[ModelPlan] = (),
        existing_meta: Mapping[str, ModelMeta] | None = None,
        replan_existing: bool = False,
        existing_running: bool | Collection[str] = False,
        fill: bool = False,
        reserve_bytes: int = 0,
        vllm_version: str | None = None,
        keep: Collection[str] = (),
        calibration: Calibration | None = None,
    ) -> Plan: ...


class ModelReader(Protocol):
    """Where the metadata the planner needs and the download plans come from."""

    def meta(self, source: str, revision: str | None = None) -> ModelMeta: ...

    def download_plan(self, source: str, dest: Path, revision: str | None = None) -> DownloadPlan | None: ...


class Downloader(Protocol):
    """`wizard.download.download_model`'s signature."""

    def __call__(
        self,
        repo_id: str,
        dest: Path,
        *,
        revision: str | None = None,
        plan: DownloadPlan | None = None,
        on_progress: ProgressCallback = ignore_progress,
        cancel: threading.Event | None = None,
    ) -> DownloadResult: ...


class HubReader:
    """A `ModelReader` that looks each Hub model up once (one `model_info`): its metadata and its
    download plan come from the same lookup, so the commit planned is the commit downloaded.
    Thread-safe: the wizard plans from worker threads. Local folders are read from disk."""

    def __init__(self) -> None:
        self._found: dict[tuple[str, str | None], HubModel] = {}
        self._lock = threading.Lock()

    def lookup(self, repo_id: str, revision: str | None = None) -> HubModel:
        with self._lock:
            found = self._found.get((repo_id, revision))
        if found is None:
            found = lookup_model(repo_id, revision=revision)
            with self._lock:
                self._found[(repo_id, revision)] = found
                self._found.setdefault((repo_id, found.sha), found)
        return found

    def meta(self, source: str, revision: str | None = None) -> ModelMeta:
        if is_local_source(source):
            return load_model_meta(source)
        return meta_from_hub(source, self.lookup(source, revision))

    def download_plan(self, source: str, dest: Path, revision: str | None = None) -> DownloadPlan | None:
        found = self.lookup(source, revision)
        return None if found.offline else plan_from_model(found, dest)


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


@dataclass(frozen=True)
class Resolved:
    """One request with the name the naming rule gave it; `resume`: the unfinished add it finishes."""

    request: AddRequest
    source: str
    name: str
    resume: ManifestModel | None = None


def resolve_requests(repo: Repository, requests: Sequence[AddRequest]) -> list[Resolved]:
    """The one naming rule, for `modelwiz add` and the wizards alike.

    A name given is checked and refused when taken (unless it is an unfinished add of the same
    source: that is resumed). No name: an unfinished add of the same source is resumed under its
    name; a finished one is refused (a second copy needs a name); else the name is derived from
    the source and made unique.
    """
    if not requests:
        raise UsageError("no MODEL given", hint="e.g. modelwiz add meta-llama/Llama-2-7b-hf")
    taken = set(repo.taken_names())
    kept = repo.kept_weights()  # folders `remove --keep-weights` left: adding the same model uses them
    out: list[Resolved] = []
    for request in requests:
        source = check_source(request.source)
        existing = [m for m in repo.manifest.models if m.source == source]
        if request.name is not None:
            name = check_name(request.name)
            entry = repo.manifest.get(name)
            if entry is not None and entry.source == source and not entry.complete:
                out.append(Resolved(request, source, name, entry))
                continue
            if name in taken and kept.get(name) != source:
                raise UsageError(
                    f"the repository already has a model named {name!r}", hint="pick another name for it (--name)"
                )
        else:
            unfinished = [m for m in existing if not m.complete]
            if unfinished:
                out.append(Resolved(request, source, unfinished[0].name, unfinished[0]))
                continue
            if existing:
                raise UsageError(
                    f"{source} is already in the repository as {existing[0].name!r}",
                    hint=f"give the copy another name (--name), or remove the first (`modelwiz remove {existing[0].name}`)",
                )
            again = [folder for folder, held in kept.items() if held == source and folder in taken]
            name = again[0] if again else unique_name(check_name(derive_name(source)), taken)
        if request.max_model_len is not None and request.max_model_len < 1:
            raise UsageError("--max-model-len must be a positive number of tokens")
        taken.add(name)
        out.append(Resolved(request, source, name))
    return out


# ------------------------------------------------------------------------------------ planning


def _budget(plan: ModelPlan) -> tuple[object, ...]:
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


def as_served(repo: Repository, plan: ModelPlan) -> ModelPlan:
    """The plan with the budget its model.json really has: a hand edit may have changed it, and
    the GPU memory the server uses is what the file says."""
    entry = repo.manifest.get(plan.name)
    if entry is None or repo.file_status(entry, MODEL_JSON) != "edited":
        return plan
    try:
        served = json.loads((repo.model_dir(plan.name) / MODEL_JSON).read_text(encoding="utf-8"))
        util = float(served["gpu_memory_utilization"])
    except (OSError, ValueError, KeyError, TypeError):
        return plan
    return replace(plan, gpu_memory_utilization=util) if 0 < util <= 1 else plan


def _edited_refusal(repo: Repository, name: str) -> ModelwizError:
    return ModelwizError(
        f"fitting the new models needs a smaller budget for {name}, whose model.json "
        "was edited by hand; modelwiz does not change it",
        hint=f"lower gpu_memory_utilization in {repo.model_dir(name) / MODEL_JSON} yourself, "
        "or move modelwiz's version (model.json.modelwiz-new) over it, then run again",
    )


def _refusal(plan: Plan) -> ModelwizError:
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
    planner: Planner = plan_models,
    reader: ModelReader | None = None,
    on_event: EventCallback = ignore_event,
    refuse: bool = True,
    check_disk: bool = True,
    fill: bool = True,
    reserve_bytes: int = 0,
    existing_running: bool | frozenset[str] = False,
) -> AddProposal:
    """Resolve names, plan jointly with the repository's models, and check disk space.

    `reader` (default: a fresh HubReader) gives each model's metadata and download plan; pass the
    same one to re-plan without asking the Hub again. `refuse=False` returns a proposal that does
    not fit (`.fits` false, reasons in the plans) instead of raising, for a UI that lets the user
    change it; `check_disk=False` skips the disk check. `fill`, `reserve_bytes` and
    `existing_running` are the planner's (leftover memory to KV cache, less what is kept free per
    GPU; the deployed models are running now). When the new models need room, the models already
    there are planned again (and shown as changed), except those whose model.json was edited by
    hand: their budgets are kept, never shrunk."""
    reader = reader if reader is not None else HubReader()
    resolved = resolve_requests(repo, requests)
    fresh = [r for r in resolved if r.resume is None]
    resume = [r for r in resolved if r.resume is not None]
    image = choose_image(repo, inventory, image_ref)
    vllm_version = image.vllm_release
    resolve_version(vllm_version)  # refuses a vLLM modelwiz cannot write model.json for
    existing = tuple(as_served(repo, p) for p in repo.managed_plans())
    edited = {p.name for p in existing if _file_status(repo, p.name, MODEL_JSON) == "edited"}
    resumed_names = {r.name for r in resume}
    new: list[NewModel] = []
    for r in resume:
        entry = r.resume
        assert entry is not None
        local = is_local_source(entry.source)
        dest = repo.model_dir(entry.name) / entry.weights
        download = None if local else reader.download_plan(entry.source, dest, entry.revision)
        new.append(NewModel(r.request, entry.plan, entry.source, entry.weights, local, resume=True, download=download))
    changed: list[BudgetChange] = []
    planned = None
    kept: list[ModelPlan] = [p for p in existing if p.name not in resumed_names]
    if fresh:
        model_requests = []
        for r in fresh:
            on_event(AddEvent("plan", f"reading {r.source}", r.name))
            meta = reader.meta(r.source, r.request.revision)
            model_requests.append(
                ModelRequest(
                    meta, r.name, max_model_len=r.request.max_model_len, min_concurrency=r.request.min_concurrency
                )
            )
        on_event(AddEvent("plan", "planning all models together"))
        calibration = load_calibration()  # what launches on this machine measured
        plan = planner(
            inventory,
            model_requests,
            existing=existing,
            replan_existing=False,
            fill=fill,
            reserve_bytes=reserve_bytes,
            existing_running=existing_running,
            vllm_version=vllm_version,
            calibration=calibration,
        )
        if not plan.fits and existing:
            on_event(AddEvent("plan", "no room with the current budgets; planning all models again"))
            existing_meta = {p.name: _existing_meta(repo, reader, p.name) for p in existing if p.name not in edited}

            def replan(keep: Collection[str]) -> Plan:
                return planner(
                    inventory,
                    model_requests,
                    existing=existing,
                    replan_existing=True,
                    existing_meta=existing_meta,
                    fill=fill,
                    reserve_bytes=reserve_bytes,
                    existing_running=existing_running,
                    vllm_version=vllm_version,
                    keep=keep,
                    calibration=calibration,
                )

            replanned = replan(edited)
            if replanned.fits:
                plan = replanned
            elif edited:
                for p in existing:
                    if p.name in edited:
                        existing_meta[p.name] = _existing_meta(repo, reader, p.name)
                # Would it fit if the hand-set budgets could shrink? Then they are what keeps it out.
                unbound = {m.name: m for m in replan(()).models}
                shrunk = [
                    p.name
                    for p in existing
                    if p.name in edited and p.name in unbound and _budget(unbound[p.name]) != _budget(p)
                ]
                if shrunk and all(m.fits for m in unbound.values()):
                    raise _edited_refusal(repo, shrunk[0])
        if not plan.fits and refuse:
            raise _refusal(plan)
        planned = plan
        by_name = {m.name: m for m in plan.models}
        kept = []
        for old in existing:
            if old.name in resumed_names:
                continue  # finished with the plan it was recorded with
            updated = by_name.get(old.name)
            if updated is None or _budget(updated) == _budget(old):
                kept.append(old)
            elif old.name in edited:
                raise _edited_refusal(repo, old.name)
            else:
                changed.append(BudgetChange(old, replace(updated, model=old.model)))
        for r in fresh:
            model_plan = by_name.get(r.name)
            if model_plan is None:
                raise ModelwizError(f"the planner returned no plan for {r.name!r}", hint="report this")
            weights = weights_folder_for(r.source)
            local = is_local_source(r.source)
            dest = repo.model_dir(r.name) / weights
            download = None if local else reader.download_plan(r.source, dest, r.request.revision)
            new.append(
                NewModel(r.request, replace(model_plan, model=r.source), r.source, weights, local, download=download)
            )
    proposal_plans = kept + [c.new for c in changed] + [n.plan for n in new]
    devices = repo.used_devices(proposal_plans)
    refuse_unservable(proposal_plans, devices, image)
    warnings = placement_warnings(proposal_plans, devices)
    total = bytes_to_download(repo, new) if all(n.plan.fits for n in new) else None
    if total is not None and check_disk:
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


def _file_status(repo: Repository, name: str, rel: str) -> str | None:
    entry = repo.manifest.get(name)
    return repo.file_status(entry, rel) if entry is not None else None


def _existing_meta(repo: Repository, reader: ModelReader, name: str) -> ModelMeta:
    """A deployed model's metadata: from its own complete weights folder (no network), else from
    where it came from, at the commit it was recorded with."""
    entry = repo.manifest.get(name)
    if entry is None:
        raise ModelwizError(f"{name} is not in the repository's manifest", hint="report this")
    weights = repo.weights_dir(entry)
    if entry.complete and (weights / "config.json").is_file():
        return reader.meta(str(weights))
    return reader.meta(entry.source, entry.revision)


def bytes_to_download(repo: Repository, new: Sequence[NewModel]) -> int | None:
    """What the new models still need on the repository's filesystem; None when unknown."""
    total = 0
    for model in new:
        dest = repo.model_dir(model.plan.name) / model.weights
        if model.local:
            source = Path(model.source)
            if dest.exists() or source.stat().st_dev == repo.existing_ancestor().stat().st_dev:
                continue  # hard links: no extra space
            total += local_size(source)
        elif model.download is None:
            return None
        else:
            total += model.download.bytes_to_fetch
    return total


# ------------------------------------------------------------------------------------ doing


def execute_add(
    repo: Repository,
    proposal: AddProposal,
    *,
    downloader: Downloader = download_model,
    on_event: EventCallback = ignore_event,
    on_progress: ProgressCallback = ignore_progress,
    cancel: threading.Event | None = None,
) -> AddResult:
    """Record, download, then write every file the new joint plan needs.

    The new models are in the manifest as `downloading`, with the commit planned, before any byte
    moves, so an interrupted add is resumed (at that commit) by running it again; they become
    `complete` only once weights and files are in.
    """
    if repo.manifest.image is None:
        repo.save(replace(repo.manifest, image=proposal.image.tag))
    new_names = {m.plan.name for m in proposal.new}
    for model in proposal.new:
        entry = repo.manifest.get(model.plan.name)
        if entry is None:
            repo.record(new_entry(model.plan, source=model.source, weights=model.weights, revision=model.revision))
            continue
        # Recorded by an earlier, interrupted run of this add (or an earlier step of the wizard):
        # keep its state and pinned revision, take the plan now confirmed.
        updated = replace(entry, plan=model.plan, revision=entry.revision or model.revision)
        if updated != entry:
            repo.record(updated)
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
            entry = repo.manifest.get(name)
            revision = (entry.revision if entry else None) or model.revision
            result = downloader(
                model.source,
                dest,
                revision=revision,
                plan=model.download if model.download is not None and model.download.sha == revision else None,
                on_progress=on_progress,
                cancel=cancel,
            )
            revisions[name] = result.sha
            if revisions[name] and entry is not None and entry.revision != revisions[name]:
                # Record the commit as soon as it is known, so a resume fetches the same one.
                repo.record(replace(entry, revision=revisions[name]))
    entries = [e for m in proposal.new if (e := repo.manifest.get(m.plan.name)) is not None]
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


# ------------------------------------------------------------------------------------ text


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
        old_util, new_util = change.old.gpu_memory_utilization, change.new.gpu_memory_utilization
        how = "shrinks" if new_util < old_util else "grows" if new_util > old_util else "changes"
        lines.append(f"     {change.new.name}'s budget {how}; a running server will reload it")
    for plan in proposal.kept:
        lines.append(f"  keep {plan.name}: {plan_summary(plan)}")
    if proposal.download_bytes is not None:
        lines.append(f"  download: {format_bytes(proposal.download_bytes)}")
    for warning in proposal.warnings:
        lines.append(f"  warning: {warning}")
    return lines
