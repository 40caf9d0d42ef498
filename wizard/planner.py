"""The memory planner: which settings let each model run, and do they fit together.

Per model it picks `tensor_parallel_size`, `max_model_len`, `gpu_memory_utilization`, the Triton
instance_group and a dtype override; across models it packs the vLLM engines onto the GPUs so that
on every device the engines' budgets plus what they hold outside them fit in the memory NVML
reports free, and their utilizations add up to at most 0.95.

vLLM's semantics (vllm/v1/worker/gpu_worker.py, determine_available_memory):
`gpu_memory_utilization` is a per-engine fraction of the device's CUDA total. The engine refuses
to start unless `free - own context >= util x total`; it then fills `util x total - (weights +
activation peak + non-torch [+ CUDA graphs from 0.21])` with KV cache, and refuses unless one
request of `max_model_len` fits. What those terms come to depends on the vLLM release: the plan is
made for one (`vllm_version`, default the newest image's), with the per-release terms of
wizard/vllm_memory.py, calibrated on public deployments (tests/data/vllm_deployments.json).

The margin: every engine keeps `margin` bytes of its budget that the plan does not count on, so
that one full-length request still fits when vLLM measures more than the estimate: 15 % of the
activation, non-torch and CUDA-graph terms plus 0.5 % of the weights, at least 0.5 GiB. On the
public deployments the estimate's largest shortfall is 0.43 GiB where this margin is 0.85 GiB;
only a 0.6.5 development build (vllm PR #10511: 1.79 GiB of non-torch memory on one GPU) falls
1.8 GiB short. Before vLLM 0.21 the plan also keeps room outside the budget for the CUDA graphs
vLLM captures after sizing the KV cache. The memory map shows both as the margin.

The algorithm:
1. place each model (largest first) with the smallest valid tp for which one engine at the
   context floor fits on the device(s) with the most room;
2. give tp=1 models a replica on each GPU nobody else uses (data parallel beats tensor parallel);
3. raise the engines' utilizations in 1% steps, fairly, first up to what the wanted context needs,
   then (fill, what `modelwiz plan` does) up to what the devices allow minus `reserve_bytes`, each
   engine in proportion to its need, so the leftover memory becomes KV cache;
4. set each model's max_model_len to its wanted length, or the longest that its KV pool holds.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from wizard.calibration import Adjustment, Calibration
from wizard.errors import UsageError
from wizard.gpus import Gpu, GpuInventory
from wizard.images import image_table
from wizard.model_meta import ModelMeta
from wizard.plan_types import InstanceGroup, ModelPlan, sort_devices
from wizard.units import GiB, MiB, format_bytes
from wizard.vllm_memory import (
    KV_BLOCK_TOKENS,
    EngineCost,
    VllmProfile,
    budget_bytes,
    context_bytes,
    has_peer_to_peer,
    kv_pool_tokens,
    kv_view,
    profile_for,
)
from wizard.vllm_memory import engine_cost as vllm_engine_cost

BLOCK_SIZE = KV_BLOCK_TOKENS  # vLLM's KV block on CUDA
MAX_UTILIZATION_PER_GPU = 0.95  # never hand vLLM engines more of one device than this
_MAX_PCT = round(MAX_UTILIZATION_PER_GPU * 100)
# Every Triton vLLM image modelwiz can run needs 7.5: server r25.01 docs/introduction/release_notes.md
# ("Release 25.01 supports CUDA compute capability 7.5 and later"), and the CUDA 13 images (25.08 on)
# dropped Volta (7.0).
MIN_COMPUTE_CAPABILITY = (7, 5)
_MIN_CC_TEXT = f"{MIN_COMPUTE_CAPABILITY[0]}.{MIN_COMPUTE_CAPABILITY[1]}"
BF16_COMPUTE_CAPABILITY = (8, 0)
DEFAULT_MIN_MODEL_LEN = 4096  # the context floor when the planner shortens a model
TP_CANDIDATES = (1, 2, 4, 8)
# Kept free on every device for the driver, the display and measurement noise.
MIN_HEADROOM_BYTES = 256 * MiB
HEADROOM_FRACTION = 0.02
# The margin inside each engine's budget (see the module docstring): a share of the terms vLLM
# measures (activation, non-torch, CUDA graphs) and a small one of the weights, which are exact.
MARGIN_MEASURED_FRACTION = 0.15
MARGIN_WEIGHTS_FRACTION = 0.005
MIN_MARGIN_BYTES = GiB // 2
MAX_NUM_SEQS = 256
LARGE_GPU_BYTES = 70 * GiB  # vLLM's threshold for its larger batch defaults
# Below this many full-length requests the reason says how short a context would hold it.
COMFORTABLE_CONCURRENCY = 4


def default_vllm_version() -> str:
    """The vLLM of the newest Triton image modelwiz knows (what a plan is for by default)."""
    return image_table()[-1].vllm_release


@dataclass(frozen=True)
class ModelRequest:
    """One model to plan.

    max_model_len: the exact context wanted (must not exceed the model's own limit); None means
        the model's own limit, shortened to what fits but never below `min_model_len`.
    min_model_len: the floor for that shortening (capped at the model's own limit).
    min_concurrency: how many full-length requests the KV cache must hold at once.
    tensor_parallel_size: only this tp (None: the smallest that fits).
    """

    meta: ModelMeta
    name: str
    max_model_len: int | None = None
    min_model_len: int = DEFAULT_MIN_MODEL_LEN
    min_concurrency: int = 1
    tensor_parallel_size: int | None = None

    @property
    def target_len(self) -> int:
        return self.max_model_len or self.meta.derived_max_model_len

    @property
    def floor_len(self) -> int:
        if self.max_model_len:
            return self.max_model_len
        return max(1, min(self.min_model_len, self.meta.derived_max_model_len))


@dataclass(frozen=True)
class EngineShare:
    """One engine on one device, for the memory map."""

    model: str  # Triton model name
    utilization: float
    weights_bytes: int
    kv_cache_bytes: int  # the KV cache the plan counts on (vLLM's pool minus the margin)
    overhead_bytes: int  # activations, graphs, non-torch, CUDA context, and the margin
    existing: bool = False  # an already deployed model kept as it is
    margin_bytes: int = 0  # of the overhead: kept for estimate errors (see planner docstring)

    @property
    def overhead_without_margin_bytes(self) -> int:
        return self.overhead_bytes - self.margin_bytes


@dataclass(frozen=True)
class GpuBudget:
    """The memory map of one device after the plan.

    driver, other processes, weights, KV cache, overhead and free add up to `total_bytes`; the
    margin is part of the overhead (shown on its own: `overhead_without_margin_bytes` + margin).
    """

    device: str  # CDI id: "0", or "0:1" for a MIG slice
    index: int
    name: str
    total_bytes: int  # NVML total
    cuda_total_bytes: int  # what utilization is a fraction of
    driver_reserved_bytes: int
    other_processes_bytes: int
    weights_bytes: int
    kv_cache_bytes: int
    overhead_bytes: int
    free_bytes: int
    utilization: float  # sum over the engines on this device
    engines: tuple[EngineShare, ...] = ()
    usable: bool = True
    note: str = ""  # why the device is not used, when it cannot be
    margin_bytes: int = 0  # the engines' safety margins, part of overhead_bytes
    reserved_bytes: int = 0  # kept free on request (--reserve) for models added later, part of free

    @property
    def overhead_without_margin_bytes(self) -> int:
        return self.overhead_bytes - self.margin_bytes

    def to_json(self) -> dict[str, Any]:
        return {
            "device": self.device,
            "index": self.index,
            "name": self.name,
            "usable": self.usable,
            "note": self.note,
            "total_bytes": self.total_bytes,
            "cuda_total_bytes": self.cuda_total_bytes,
            "driver_reserved_bytes": self.driver_reserved_bytes,
            "other_processes_bytes": self.other_processes_bytes,
            "weights_bytes": self.weights_bytes,
            "kv_cache_bytes": self.kv_cache_bytes,
            "overhead_bytes": self.overhead_bytes,
            "margin_bytes": self.margin_bytes,
            "free_bytes": self.free_bytes,
            "reserved_bytes": self.reserved_bytes,
            "utilization": self.utilization,
            "engines": [e.__dict__.copy() for e in self.engines],
        }


@dataclass(frozen=True)
class PlanChange:
    """A setting of an already deployed model that a joint re-plan changes."""

    name: str
    setting: str
    old: Any
    new: Any


@dataclass(frozen=True)
class Plan:
    models: tuple[ModelPlan, ...]
    gpus: tuple[GpuBudget, ...]
    inventory: GpuInventory
    changes: tuple[PlanChange, ...] = ()
    vllm_version: str = ""  # the release the plan is for

    @property
    def fits(self) -> bool:
        return all(m.fits for m in self.models)

    def to_json(self) -> dict[str, Any]:
        return {
            "gpus": self.inventory.to_json()["gpus"],
            "models": [m.to_json() for m in self.models],
            "fits": self.fits,
            "budgets": [g.to_json() for g in self.gpus],
            "changes": [c.__dict__.copy() for c in self.changes],
        }


# ---- per-engine arithmetic ----------------------------------------------------------------


def batch_limits(cuda_total_bytes: int) -> tuple[int, int]:
    """(max_num_batched_tokens, max_num_seqs) the plan assumes; pass both to vLLM."""
    return (8192 if cuda_total_bytes >= LARGE_GPU_BYTES else 2048), MAX_NUM_SEQS


def headroom_bytes(gpu: Gpu) -> int:
    return max(MIN_HEADROOM_BYTES, int(gpu.memory_total_bytes * HEADROOM_FRACTION))


def engine_cost(
    meta: ModelMeta,
    tp: int,
    cuda_total_bytes: int,
    profile: VllmProfile,
    gpu_name: str = "",
    scale: float = 1.0,
) -> EngineCost:
    """Non-KV memory of one engine on each GPU of its tp group, with the batch limits the plan sets
    (`scale`: this machine's calibration of the measured terms, wizard/calibration.py)."""
    mnbt, seqs = batch_limits(cuda_total_bytes)
    return vllm_engine_cost(
        meta,
        tp,
        profile=profile,
        max_num_batched_tokens=mnbt,
        max_num_seqs=seqs,
        peer_to_peer=has_peer_to_peer(gpu_name),
        scale=scale,
    )


def _budget_bytes(pct: int, total: int) -> int:
    """vLLM requests ceil(total x util) bytes."""
    return budget_bytes(pct / 100, total)


def margin_bytes(cost: EngineCost) -> int:
    """The part of an engine's budget the plan does not count on (see the module docstring)."""
    measured = cost.activation + cost.non_torch + cost.cuda_graphs
    return max(MIN_MARGIN_BYTES, int(MARGIN_MEASURED_FRACTION * measured + MARGIN_WEIGHTS_FRACTION * cost.weights))


# ---- planning state -----------------------------------------------------------------------


@dataclass(eq=False)
class _Placement:
    request: ModelRequest
    tp: int
    devices: list[_Device]
    profile: VllmProfile
    pct: int = 0
    existing: ModelPlan | None = None  # set when this is a re-planned deployed model
    need_pct: int = 0  # what its context and concurrency need (the share of leftover follows it)

    @property
    def kv_meta(self) -> ModelMeta:
        """The model as this vLLM lays out its KV cache."""
        return kv_view(self.request.meta, self.profile)

    def cost(self, dev: _Device) -> EngineCost:
        return engine_cost(self.request.meta, self.tp, dev.total, self.profile, dev.gpu.name, dev.scale)

    @property
    def adjustment(self) -> Adjustment | None:
        """The calibration its devices use (the one from the most launches)."""
        found = [d.adjustment for d in self.devices if d.adjustment is not None]
        return max(found, key=lambda a: a.launches) if found else None

    def one_request(self, length: int, dev: _Device) -> int:
        mnbt, _ = batch_limits(dev.total)
        return self.kv_meta.kv_bytes_for_request(length, self.tp, mnbt, block=BLOCK_SIZE)

    def kv_need(self, length: int, dev: _Device) -> int:
        return self.one_request(length, dev) * max(1, self.request.min_concurrency)

    def pct_for(self, length: int, devices: Sequence[_Device] | None = None) -> int:
        """The utilization (in %) the engine needs on all its devices for `length`, margin included."""
        need = 0
        for dev in devices if devices is not None else self.devices:
            cost = self.cost(dev)
            inside = cost.inside + margin_bytes(cost) + self.kv_need(length, dev)
            need = max(need, -(-inside * 100 // dev.total))
        return need

    def kv_pool(self) -> int:
        """Expected KV cache per GPU (bytes): the budget left after the non-KV terms."""
        return min(_budget_bytes(self.pct, d.total) - self.cost(d).inside for d in self.devices)

    def margin(self) -> int:
        return max(margin_bytes(self.cost(d)) for d in self.devices)

    def footprint(self, dev: _Device, pct: int | None = None) -> int:
        """What the engine holds on `dev`: its budget and what it keeps outside it."""
        return _budget_bytes(self.pct if pct is None else pct, dev.total) + self.cost(dev).outside


@dataclass(eq=False)
class _Device:
    gpu: Gpu
    total: int
    avail: int  # free memory minus headroom, for engines
    usable: bool
    note: str = ""
    fixed: list[tuple[ModelPlan, int, int]] = field(default_factory=list)  # plan, pct, bytes
    reserved: int = 0  # kept free on request, already taken out of `avail`
    members: list[_Placement] = field(default_factory=list)
    adjustment: Adjustment | None = None  # what launches on this machine measured (calibration)

    @property
    def scale(self) -> float:
        return self.adjustment.factor if self.adjustment is not None else 1.0

    @property
    def cdi_id(self) -> str:
        return self.gpu.cdi_id

    def ok(self, pcts: Mapping[_Placement, int]) -> bool:
        """Would the engines fit with these utilizations (members not in `pcts` keep theirs)?"""
        total_pct = sum(f[1] for f in self.fixed)
        used = sum(f[2] for f in self.fixed)
        engines = set(self.members) | set(pcts)
        if len(engines) + len(self.fixed) > 1 and not all(p.profile.shares_gpus for p in engines):
            return False  # old vLLM: utilization is a limit on the whole GPU, not a budget
        for p in engines:
            pct = pcts.get(p, p.pct)
            total_pct += pct
            used += p.footprint(self, pct)
        return total_pct <= _MAX_PCT and used <= self.avail

    def room(self) -> int:
        used = sum(f[2] for f in self.fixed) + sum(p.footprint(self) for p in self.members)
        return self.avail - used


def _devices(
    inventory: GpuInventory,
    existing: Sequence[ModelPlan],
    existing_running: bool | Collection[str],
    reserve_bytes: int = 0,
    calibration: Calibration | None = None,
    release: str = "",
) -> list[_Device]:
    def running(plan: ModelPlan) -> bool:
        if isinstance(existing_running, bool):
            return existing_running
        return plan.name in existing_running

    out = []
    for gpu in inventory.devices:
        free = gpu.memory_free_bytes
        if existing_running:  # the deployed engines' memory shows as used; count it once
            held = sum(_footprint(p, gpu) for p in existing if gpu.cdi_id in p.devices and p.fits and running(p))
            free = min(gpu.cuda_total_bytes, free + held)
        usable = gpu.compute_capability >= MIN_COMPUTE_CAPABILITY
        note = (
            ""
            if usable
            else (
                f"compute capability {gpu.compute_capability_str} is below the {_MIN_CC_TEXT} Triton's vLLM "
                "images need (25.01 on; the CUDA 13 images from 25.08 dropped Volta)"
            )
        )
        out.append(
            _Device(
                gpu=gpu,
                total=gpu.cuda_total_bytes,
                avail=free - headroom_bytes(gpu) - reserve_bytes,
                usable=usable,
                note=note,
                reserved=reserve_bytes,
                adjustment=calibration.adjustment(gpu.name, release) if calibration is not None else None,
            )
        )
    return out


def _footprint(plan: ModelPlan, gpu: Gpu) -> int:
    """What a deployed engine holds on `gpu`: its budget, its context and (old vLLM) its graphs."""
    pct = round(plan.gpu_memory_utilization * 100)
    outside = plan.extra.get("outside_bytes_per_gpu", context_bytes(plan.tensor_parallel_size))
    return _budget_bytes(pct, gpu.cuda_total_bytes) + int(outside)


# ---- the planner --------------------------------------------------------------------------


def plan_models(
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
) -> Plan:
    """Plan `requests` on `inventory`.

    existing: plans of models already deployed. By default their budgets stay as they are and the
        new models go into what is left. With `replan_existing=True` they are planned again
        together with the new ones; that needs their metadata in `existing_meta` (keyed by Triton
        model name), and `Plan.changes` lists every setting that moved (show it; ask first).
    existing_running: the deployed models are running now (True, or the names of those that are),
        so NVML's free memory already lacks their footprint; it is added back before planning.
    fill: give each device's leftover memory to the engines on it, in proportion to what each
        needs (more KV cache, more concurrency; a later model then needs a re-plan). `modelwiz
        plan` always fills; callers that add models to a running server decide for themselves.
        Without it every engine gets only what its weights, activations, CUDA graphs, margin and
        the KV cache for its context and concurrency need.
    reserve_bytes: keep this much free on every GPU (for models to be added later).
    vllm_version: the vLLM release the engines will run (default: the newest image's); the
        non-KV terms and margins are that release's (wizard/vllm_memory.py).
    keep: names of existing models whose budgets stay as they are even with `replan_existing`
        (a budget the user set by hand); the others are planned again around them.
    calibration: what launches on this machine measured (wizard/calibration.py): on a GPU model
        and vLLM release it has launches for, the measured terms are scaled to match them.
    Plan.models lists the requests in their order, then (when re-planned) the existing models.
    """
    if reserve_bytes < 0:
        raise UsageError("the memory to keep free per GPU cannot be negative", hint="give --reserve 0 or more GiB")
    version = vllm_version or default_vllm_version()
    profile = profile_for(version)
    names = [r.name for r in requests]
    existing_fitting = [p for p in existing if p.fits]
    taken = {p.name for p in existing if not replan_existing or p.name in keep}
    for name in names:
        if names.count(name) > 1 or name in taken:
            raise UsageError(f"two models are named {name!r}", hint="give each model its own name")
    all_requests: list[tuple[ModelRequest, ModelPlan | None]] = [(r, None) for r in requests]
    if replan_existing:
        for plan in existing:
            if plan.name in keep:
                continue
            meta = (existing_meta or {}).get(plan.name)
            if meta is None:
                raise UsageError(
                    f"cannot re-plan {plan.name!r} without its model metadata",
                    hint="pass existing_meta for every deployed model",
                )
            all_requests.append((ModelRequest(meta=meta, name=plan.name), plan))
    for request, _ in all_requests:
        _check_request(request)

    devices = _devices(inventory, existing_fitting, existing_running, reserve_bytes, calibration, profile.release)
    for plan in existing_fitting:
        if not replan_existing or plan.name in keep:
            for dev in devices:
                if dev.cdi_id in plan.devices:
                    pct = round(plan.gpu_memory_utilization * 100)
                    dev.fixed.append((plan, pct, _footprint(plan, dev.gpu)))

    placements: dict[int, _Placement] = {}
    order = sorted(range(len(all_requests)), key=lambda i: -all_requests[i][0].meta.weights_bytes)
    for i in order:
        request, old = all_requests[i]
        placement = _place(request, devices, profile)
        if placement is not None:
            placement.existing = old
            placements[i] = placement
    placed = [placements[i] for i in order if i in placements]
    _add_replicas(placed, devices)
    _grow(placed, target=lambda p: p.pct_for(p.request.target_len))
    for p in placed:
        p.need_pct = p.pct
    if fill:
        _fill(placed)

    models = []
    for i, (request, _old) in enumerate(all_requests):
        if i in placements:
            models.append(_model_plan(placements[i]))
        else:
            models.append(
                _misfit_plan(request, devices, (replan_existing and not keep) or not existing_fitting, profile)
            )
    changes = _changes(models, existing) if replan_existing else ()
    return Plan(
        models=tuple(models),
        gpus=tuple(_budget(d) for d in devices),
        inventory=inventory,
        changes=changes,
        vllm_version=profile.release,
    )


def _check_request(request: ModelRequest) -> None:
    meta = request.meta
    if request.max_model_len is not None:
        if request.max_model_len < 1:
            raise UsageError("--max-model-len must be a positive number of tokens")
        if request.max_model_len > meta.derived_max_model_len:
            raise UsageError(
                f"--max-model-len {request.max_model_len} is above {meta.source}'s limit of "
                f"{meta.derived_max_model_len} tokens (vLLM refuses it)",
                hint=f"use {meta.derived_max_model_len} or less",
            )
    if request.min_concurrency < 1:
        raise UsageError("the minimum concurrency must be at least 1")
    tp = request.tensor_parallel_size
    if tp is not None and not meta.valid_tensor_parallel(tp):
        raise UsageError(
            f"tensor_parallel_size {tp} does not divide {meta.source}'s attention heads",
            hint="use " + " or ".join(str(t) for t in _tp_options(meta)),
        )


def _tp_options(meta: ModelMeta, pinned: int | None = None) -> list[int]:
    if pinned is not None:
        return [pinned] if meta.valid_tensor_parallel(pinned) else []
    return [tp for tp in TP_CANDIDATES if meta.valid_tensor_parallel(tp)]


def _place(
    request: ModelRequest, devices: list[_Device], profile: VllmProfile, length: int | None = None
) -> _Placement | None:
    """The smallest valid tp whose engine, at the context floor, fits on the roomiest device(s)."""
    length = length or request.floor_len
    usable = [d for d in devices if d.usable]
    for tp in _tp_options(kv_view(request.meta, profile), request.tensor_parallel_size):
        for group in _groups(usable, tp):
            chosen = sorted(group, key=lambda d: -d.room())[:tp]
            placement = _Placement(request=request, tp=tp, devices=chosen, profile=profile)
            pct = placement.pct_for(length)
            if pct <= _MAX_PCT and all(d.ok({placement: pct}) for d in chosen):
                placement.pct = pct
                for d in chosen:
                    d.members.append(placement)
                return placement
    return None


def _groups(devices: list[_Device], tp: int) -> list[list[_Device]]:
    """Device sets an engine of this tp can span, roomiest first.

    tp=1: every device alone (MIG slices included). tp>1: the first `tp` devices in container
    order, if they are whole GPUs of one model and memory size. Triton's vLLM backend gives a
    KIND_MODEL engine the container's first `tp` GPUs whatever the plan says, so every tensor
    parallel engine of a server lands there (and is budgeted there, together). The devices that
    sort first here also sort first in any container that mounts them.
    """
    if tp == 1:
        return [[d] for d in sorted(devices, key=lambda d: -d.room())]
    order = {cdi: i for i, cdi in enumerate(sort_devices([d.cdi_id for d in devices]))}
    first = sorted(devices, key=lambda d: order[d.cdi_id])[:tp]
    whole = all(d.gpu.mig_index is None and not d.gpu.mig_enabled for d in first)
    same = len({(d.gpu.name, d.gpu.memory_total_bytes) for d in first}) == 1
    return [first] if len(first) == tp and whole and same else []


def _add_replicas(placed: list[_Placement], devices: list[_Device]) -> None:
    """Put another engine of each tp=1 model on every usable device nobody else uses."""
    for dev in devices:
        if not dev.usable or dev.members or dev.fixed:
            continue
        for p in placed:
            if p.tp != 1:
                continue
            candidate = [*p.devices, dev]
            pct = p.pct_for(p.request.floor_len, candidate)
            if pct <= _MAX_PCT and all(d.ok({p: pct}) for d in candidate):
                p.devices.append(dev)
                dev.members.append(p)
                p.pct = pct
                break


def _grow(placed: list[_Placement], *, target: Callable[[_Placement], int]) -> None:
    """Raise utilizations 1% at a time, round-robin, while every device of the engine has room."""
    limits = {p: min(_MAX_PCT, target(p)) for p in placed}
    active = [p for p in placed if p.pct < limits[p]]
    while active:
        still = []
        for p in active:
            if all(d.ok({p: p.pct + 1}) for d in p.devices):
                p.pct += 1
                if p.pct < limits[p]:
                    still.append(p)
        active = still


def _fill(placed: list[_Placement]) -> None:
    """Give the devices' leftover memory to their engines, 1% at a time, each in proportion to
    its need: the engine furthest below its share (pct / need) grows next, while it can."""
    active = [p for p in placed if p.pct < _MAX_PCT]
    while active:
        p = min(active, key=lambda q: (q.pct / max(1, q.need_pct), q.request.name))
        if all(d.ok({p: p.pct + 1}) for d in p.devices):
            p.pct += 1
            if p.pct >= _MAX_PCT:
                active.remove(p)
        else:  # its devices are full; others growing will not make room
            active.remove(p)


def _longest_fitting(p: _Placement, pool: int) -> int:
    """The longest context (a multiple of 1024 when above 2048) whose KV fits in `pool`."""
    lo, hi = p.request.floor_len, p.request.target_len
    mnbt, _ = batch_limits(min(d.total for d in p.devices))

    def fits(length: int) -> bool:
        one = p.kv_meta.kv_bytes_for_request(length, p.tp, mnbt, block=BLOCK_SIZE)
        return one * p.request.min_concurrency <= pool

    if fits(hi):
        return hi
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if fits(mid) else (lo, mid)
    return max(p.request.floor_len, lo // 1024 * 1024 if lo > 2048 else lo)


def _model_plan(p: _Placement) -> ModelPlan:
    request, meta = p.request, p.request.meta
    pool = max(0, p.kv_pool())
    margin = p.margin()
    length = _longest_fitting(p, max(0, pool - margin))
    mnbt, seqs = batch_limits(min(d.total for d in p.devices))
    per_token = p.kv_meta.kv_bytes_per_token(p.tp)
    one_request = p.kv_meta.kv_bytes_for_request(length, p.tp, mnbt, block=BLOCK_SIZE)
    devices = sort_devices([d.cdi_id for d in p.devices])
    gpus = tuple(sorted({d.gpu.index for d in p.devices}))
    low_cc = min(d.gpu.compute_capability for d in p.devices) < BF16_COMPUTE_CAPABILITY
    dtype = "float16" if low_cc and meta.needs_16bit_compute and meta.quantization is None else None
    group = InstanceGroup("KIND_GPU" if p.tp == 1 else "KIND_MODEL", 1, gpus)
    cost_gpu = min(p.devices, key=lambda d: d.total)
    cost = p.cost(cost_gpu)
    plan = ModelPlan(
        model=meta.source,
        name=request.name,
        fits=True,
        reason="",
        tensor_parallel_size=p.tp,
        gpu_memory_utilization=p.pct / 100,
        max_model_len=length,
        dtype=dtype,
        instance_group=group,
        weights_bytes=meta.weights_bytes,
        kv_cache_bytes_per_token=per_token,
        kv_cache_tokens=kv_pool_tokens(pool, per_token),
        max_concurrency=round(pool / one_request, 2) if one_request else 0.0,
        devices=devices,
        extra={
            "max_num_batched_tokens": mnbt,
            "max_num_seqs": seqs,
            "derived_max_model_len": meta.derived_max_model_len,
            "weights_bytes_per_gpu": cost.weights,
            "non_kv_bytes_per_gpu": cost.inside,
            "context_bytes_per_gpu": cost.context,
            "outside_bytes_per_gpu": cost.outside,
            "margin_bytes_per_gpu": margin,
            "kv_cache_bytes_per_gpu": pool,
            "vllm_version": p.profile.release,
            "gpu_name": cost_gpu.gpu.name,
            # the terms a launch calibrates (activation + non-torch), and the scale they carry
            "calibrated_bytes_per_gpu": cost.activation + cost.non_torch,
            "calibration_factor": cost_gpu.scale,
        },
    )
    return replace(plan, reason=_fit_reason(p, plan))


def _fit_reason(p: _Placement, plan: ModelPlan) -> str:
    meta, request = p.request.meta, p.request
    where = ", ".join(plan.devices)
    parts = []
    if p.tp == 1:
        engines = len(p.devices)
        parts.append(
            f"{format_bytes(meta.weights_bytes)} of weights fit on one GPU: "
            + (f"one engine on GPU {where}" if engines == 1 else f"{engines} replicas on GPUs {where}")
        )
    else:
        smaller = [tp for tp in _tp_options(meta) if tp < p.tp]
        parts.append(
            f"{format_bytes(meta.weights_bytes)} of weights need tensor parallelism over GPUs {where} "
            f"({format_bytes(meta.weights_bytes // p.tp)} each)"
            + (f"; tp {smaller[-1]} does not fit" if smaller else "")
        )
    if plan.max_model_len < meta.derived_max_model_len:
        floor = "" if request.max_model_len else f", floor {request.floor_len}"
        why = "as asked" if request.max_model_len else "the longest that fits"
        parts.append(f"context {plan.max_model_len} of the model's {meta.derived_max_model_len} ({why}{floor})")
    else:
        parts.append(f"full context {plan.max_model_len}")
    parts.append(
        f"utilization {plan.gpu_memory_utilization:.2f} leaves {format_bytes(plan.extra['kv_cache_bytes_per_gpu'])} "
        f"of KV cache per GPU ({plan.kv_cache_tokens} tokens, {plan.max_concurrency:g} full-length requests), "
        f"{format_bytes(plan.extra['margin_bytes_per_gpu'])} of it kept as margin for vLLM {p.profile.release}"
    )
    adjustment = p.adjustment
    if adjustment is not None:
        launches = f"{adjustment.launches} launch{'es' if adjustment.launches > 1 else ''}"
        parts.append(
            f"calibrated from {launches} on this machine (activation and non-torch memory x{adjustment.factor:g})"
        )
    few = _few_requests_note(p, plan)
    if few:
        parts.append(few)
    if plan.dtype:
        parts.append("float16 because bfloat16 needs compute capability 8.0")
    return "; ".join(parts)


def _few_requests_note(p: _Placement, plan: ModelPlan) -> str:
    """ "fits, but only 1.3 requests at 131,072 tokens; 4 at 40,960" when it holds fewer than four."""
    if plan.max_concurrency >= COMFORTABLE_CONCURRENCY:
        return ""
    note = f"fits, but only {plan.max_concurrency:g} requests at {plan.max_model_len:,} tokens"
    pool = plan.extra["kv_cache_bytes_per_gpu"]
    dev = min(p.devices, key=lambda d: d.total)
    lo, hi = 0, plan.max_model_len
    while hi - lo > 1:  # the longest context of which four fit in the pool
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if COMFORTABLE_CONCURRENCY * p.one_request(mid, dev) <= pool else (lo, mid)
    four = lo // 1024 * 1024 if lo >= 2048 else lo
    if four > 0:
        note += f"; {COMFORTABLE_CONCURRENCY} at {four:,}"
    return note


# ---- when a model does not fit ------------------------------------------------------------


def _empty_like(dev: _Device) -> _Device:
    """The same device with nothing else on it (free = CUDA total, less what is reserved)."""
    return _Device(
        gpu=dev.gpu,
        total=dev.total,
        avail=dev.total - headroom_bytes(dev.gpu) - dev.reserved,
        usable=True,
        reserved=dev.reserved,
    )


def _fits_empty(request: ModelRequest, devices: list[_Device], length: int, profile: VllmProfile) -> _Placement | None:
    return _place(request, [_empty_like(d) for d in devices], profile, length)


def _misfit_plan(request: ModelRequest, devices: list[_Device], nothing_fixed: bool, profile: VllmProfile) -> ModelPlan:
    meta = request.meta
    reason, suggestions = _misfit_reason(request, devices, nothing_fixed, profile)
    return ModelPlan(
        model=meta.source,
        name=request.name,
        fits=False,
        reason=reason,
        tensor_parallel_size=0,
        gpu_memory_utilization=0.0,
        max_model_len=request.target_len,
        dtype=None,
        instance_group=InstanceGroup("KIND_GPU", 0, ()),
        weights_bytes=meta.weights_bytes,
        kv_cache_bytes_per_token=meta.kv_bytes_per_token(1),
        kv_cache_tokens=0,
        max_concurrency=0.0,
        suggestions=tuple(suggestions),
        extra={"derived_max_model_len": meta.derived_max_model_len},
    )


def _misfit_reason(
    request: ModelRequest, devices: list[_Device], nothing_fixed: bool, profile: VllmProfile
) -> tuple[str, list[str]]:
    meta = request.meta
    weights = format_bytes(meta.weights_bytes)
    usable = [d for d in devices if d.usable]
    if not usable:
        notes = "; ".join(f"GPU {d.cdi_id} ({d.gpu.name}): {d.note}" for d in devices) or "no GPUs"
        hint = f"use a GPU with compute capability {_MIN_CC_TEXT} or newer (T4, A10, L4, A100, H100, ...)"
        return f"no GPU vLLM can use: {notes}", [hint]
    suggestions: list[str] = []
    kinds = _kinds(usable)
    biggest_name, biggest = max(kinds.items(), key=lambda kv: kv[1][0].total)
    count = len(biggest)
    size = format_bytes(biggest[0].total)
    floor = request.floor_len
    # Would it fit on empty GPUs of this machine, and with how many of the biggest kind?
    empty_here = _fits_empty(request, usable, floor, profile)
    if empty_here is None:
        needed = _gpus_needed(request, biggest[0], floor, profile)
        have = f"{count} GPU{'s' if count > 1 else ''} with {size}"
        if needed is None:
            reason = f"needs {weights} of weights; {have}; does not fit even on 8 such GPUs"
        else:
            reason = f"needs {weights} of weights; {have}; needs at least {needed} such GPUs"
            suggestions.append(f"more GPUs: {needed} x {biggest_name} (tensor_parallel_size {needed})")
        shorter = _longest_placeable(request, [_empty_like(d) for d in usable], profile)
        if shorter is not None and shorter < floor:
            reason += f" at {floor} tokens of context"
            suggestions.insert(0, f"a shorter context: --max-model-len {shorter} fits")
        if meta.quantization is None:
            for bits, divisor in ((8, 2), (4, 4)):
                small = _scaled(meta, meta.weights_bytes // divisor)
                if _fits_empty(ModelRequest(small, request.name, request.max_model_len), usable, floor, profile):
                    suggestions.append(
                        f"{'an' if bits == 8 else 'a'} {bits}-bit quantized variant (about {format_bytes(small.weights_bytes)} of weights) fits"
                    )
                    break
        return reason, suggestions
    # It fits on empty GPUs: what else is on them keeps it out.
    held: list[str] = []
    for d in usable:
        other = max(0, d.total - d.gpu.memory_free_bytes)
        models = [f[0].name for f in d.fixed] + [p.request.name for p in d.members]
        holders: list[str] = []
        if other > headroom_bytes(d.gpu):
            holders.append(f"other processes use {format_bytes(other)}")
        if models:
            holders.append("models " + ", ".join(models))
        if holders:
            held.append(f"GPU {d.cdi_id}: " + " and ".join(holders))
    reason = (
        f"needs {format_bytes(empty_here.pct_for(floor) / 100 * min(d.total for d in empty_here.devices))} "
        f"per GPU ({weights} of weights) but the GPUs are taken: " + ("; ".join(held) or "not enough free memory")
    )
    if not profile.shares_gpus:
        reason += (
            f"; vLLM {profile.release} counts every process's memory against gpu_memory_utilization, "
            "so each engine needs a GPU of its own"
        )
        suggestions.append("an image with vLLM 0.6.4 or newer (engines then share GPUs)")
    shorter = _longest_placeable(request, devices, profile)
    if shorter is not None and shorter < floor:
        suggestions.append(f"a shorter context: --max-model-len {shorter} fits")
    if empty_here.tp > 1:
        first = ", ".join(d.cdi_id for d in empty_here.devices)
        reason += (
            f"; with tensor_parallel_size {empty_here.tp} it must run on the server's first GPUs ({first}): "
            "Triton's vLLM backend puts every multi-GPU model there"
        )
        suggestions.append("serve it from a second Triton server (another repository and --name, other ports)")
    if any("other processes" in h for h in held):
        suggestions.append("stop the other processes that hold GPU memory (see nvidia-smi)")
    if not nothing_fixed:
        suggestions.append("re-plan the models already deployed together with this one")
    else:
        suggestions.append("plan fewer models on these GPUs")
    return reason, suggestions


def _kinds(devices: list[_Device]) -> dict[str, list[_Device]]:
    kinds: dict[str, list[_Device]] = {}
    for d in devices:
        kinds.setdefault(d.gpu.name, []).append(d)
    return kinds


def _gpus_needed(request: ModelRequest, like: _Device, length: int, profile: VllmProfile) -> int | None:
    """How many empty GPUs like `like` the model needs (tensor parallel), up to 8."""
    for tp in _tp_options(kv_view(request.meta, profile)):
        clones = [_empty_like(like) for _ in range(tp)]
        p = _place(replace(request, tensor_parallel_size=None), clones, profile, length)
        if p is not None and p.tp == tp:
            return tp
    return None


def _longest_placeable(request: ModelRequest, devices: list[_Device], profile: VllmProfile) -> int | None:
    """The longest context (>= 1024 tokens) with which the model could be placed, if any."""

    def attempt(length: int) -> bool:
        return _place(request, [_clone(d) for d in devices], profile, length) is not None

    lo, hi = 1024, request.floor_len
    if hi <= lo or not attempt(lo):
        return None
    while True:  # bisect on multiples of 256; each step moves lo up or hi down
        mid = (lo + hi) // 2 // 256 * 256
        if mid <= lo:
            return lo
        lo, hi = (mid, hi) if attempt(mid) else (lo, mid)


def _clone(dev: _Device) -> _Device:
    """A copy that keeps what is already placed (their utilizations frozen as fixed budgets)."""
    copy = _Device(
        gpu=dev.gpu,
        total=dev.total,
        avail=dev.avail,
        usable=dev.usable,
        note=dev.note,
        fixed=list(dev.fixed),
        reserved=dev.reserved,
    )
    for p in dev.members:
        copy.fixed.append((_PLACEHOLDER, p.pct, p.footprint(dev)))
    return copy


_PLACEHOLDER = ModelPlan(
    model="",
    name="",
    fits=True,
    reason="",
    tensor_parallel_size=1,
    gpu_memory_utilization=0.0,
    max_model_len=0,
    dtype=None,
    instance_group=InstanceGroup("KIND_GPU", 0, ()),
    weights_bytes=0,
    kv_cache_bytes_per_token=0,
    kv_cache_tokens=0,
    max_concurrency=0.0,
)


def _scaled(meta: ModelMeta, weights: int) -> ModelMeta:
    return replace(meta, weights_bytes=weights)


# ---- the memory map -----------------------------------------------------------------------


def _budget(dev: _Device) -> GpuBudget:
    gpu = dev.gpu
    reserved = max(0, gpu.memory_total_bytes - dev.total)
    shares: list[EngineShare] = []
    for plan, pct, footprint in dev.fixed:
        weights = plan.weights_bytes // max(1, plan.tensor_parallel_size)
        margin = min(footprint, int(plan.extra.get("margin_bytes_per_gpu", 0)))
        pool = plan.kv_cache_tokens * plan.kv_cache_bytes_per_token
        kv = max(0, min(footprint - margin, pool - margin))
        weights = min(weights, footprint - kv - margin)
        shares.append(
            EngineShare(plan.name, pct / 100, weights, kv, footprint - weights - kv, existing=True, margin_bytes=margin)
        )
    for p in dev.members:
        cost = p.cost(dev)
        budget = _budget_bytes(p.pct, dev.total)
        pool = max(0, budget - cost.inside)
        margin_inside = min(pool, margin_bytes(cost))
        kv = pool - margin_inside
        weights = min(cost.weights, budget)
        margin = margin_inside + cost.graphs_outside
        shares.append(
            EngineShare(
                p.request.name,
                p.pct / 100,
                weights,
                kv,
                budget + cost.outside - weights - kv,
                existing=p.existing is not None,
                margin_bytes=margin,
            )
        )
    engines_bytes = sum(s.weights_bytes + s.kv_cache_bytes + s.overhead_bytes for s in shares)
    # Memory in use that is neither the driver's nor an engine of this plan.
    other = max(0, dev.total - (dev.avail + dev.reserved + headroom_bytes(gpu)))
    free = max(0, gpu.memory_total_bytes - reserved - other - engines_bytes)
    return GpuBudget(
        device=dev.cdi_id,
        index=gpu.index,
        name=gpu.name,
        total_bytes=gpu.memory_total_bytes,
        cuda_total_bytes=dev.total,
        driver_reserved_bytes=reserved,
        other_processes_bytes=other,
        weights_bytes=sum(s.weights_bytes for s in shares),
        kv_cache_bytes=sum(s.kv_cache_bytes for s in shares),
        overhead_bytes=sum(s.overhead_bytes for s in shares),
        free_bytes=free,
        utilization=round(sum(s.utilization for s in shares), 2),
        engines=tuple(shares),
        usable=dev.usable,
        note=dev.note,
        margin_bytes=sum(s.margin_bytes for s in shares),
        reserved_bytes=min(dev.reserved, free) if dev.usable else 0,
    )


def _changes(models: list[ModelPlan], existing: Sequence[ModelPlan]) -> tuple[PlanChange, ...]:
    by_name = {m.name: m for m in models}
    out = []
    for old in existing:
        new = by_name.get(old.name)
        if new is None:
            continue
        for setting in ("fits", "tensor_parallel_size", "gpu_memory_utilization", "max_model_len", "dtype", "devices"):
            a, b = getattr(old, setting), getattr(new, setting)
            if a != b:
                out.append(PlanChange(old.name, setting, a, b))
    return tuple(out)
