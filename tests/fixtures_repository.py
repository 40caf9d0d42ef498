"""Fakes at the planner / model reader / download boundary, for the repository and add-flow tests.

Each fake has the real one's signature (`add_flow.Planner`, `add_flow.ModelReader`,
`add_flow.Downloader`). The fake planner packs engines the way the real one must: each engine reserves
`gpu_memory_utilization` of its GPU, the fractions on one GPU add up to at most 0.9, multi-GPU
engines are KIND_MODEL with count 1, single-GPU engines KIND_GPU on one explicit device.
"""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from wizard.download import DownloadPlan, DownloadResult
from wizard.errors import ModelwizError
from wizard.plan_types import InstanceGroup, ModelPlan
from wizard.progress import ignore_progress

GPU_CAP = 0.9


@dataclass(frozen=True)
class FakeMeta:
    ref: str
    weights_bytes: int
    tp: int = 1


@dataclass(frozen=True)
class FakePlan:
    models: tuple[ModelPlan, ...]
    gpus: tuple
    fits: bool


def make_plan(
    name,
    *,
    util=0.4,
    devices=("0",),
    tp=1,
    source=None,
    max_model_len=4096,
    dtype="bfloat16",
    weights_bytes=10 * 1024**3,
):
    kind = "KIND_MODEL" if tp > 1 else "KIND_GPU"
    group = InstanceGroup(kind, 1, tuple(int(d.split(":")[0]) for d in devices))
    return ModelPlan(
        model=source or f"org/{name}",
        name=name,
        fits=True,
        reason="fits",
        tensor_parallel_size=tp,
        gpu_memory_utilization=util,
        max_model_len=max_model_len,
        dtype=dtype,
        instance_group=group,
        weights_bytes=weights_bytes,
        kv_cache_bytes_per_token=131072,
        kv_cache_tokens=100_000,
        max_concurrency=24.4,
        devices=tuple(devices),
    )


def _need(meta: FakeMeta, total: int) -> float:
    return round(meta.weights_bytes * 1.25 / total + 0.05, 2)


def fake_plan_models(
    inventory,
    requests,
    *,
    existing=(),
    existing_meta=None,
    replan_existing=False,
    existing_running=False,
    fill=False,
    reserve_bytes=0,
    vllm_version=None,
    keep=(),
    calibration=None,
):
    devices = [d.cdi_id for d in inventory.devices]
    total = {d.cdi_id: d.cuda_total_bytes for d in inventory.devices}
    used = {d: 0.0 for d in devices}
    out: list[ModelPlan] = []
    for plan in existing:
        util = plan.gpu_memory_utilization
        if replan_existing and plan.name not in keep:
            util = round(plan.weights_bytes * 1.25 / total[plan.devices[0]] + 0.05, 2)
            plan = replace(plan, gpu_memory_utilization=util, reason="re-planned")
        for d in plan.devices:
            used[d] += util
        out.append(plan)
    fits = True
    for request in requests:
        meta = request.meta
        tp = meta.tp
        need = _need(meta, total[devices[0]] * tp)
        if tp > 1:
            chosen = devices[:tp]
            ok = len(chosen) == tp and all(used[d] + need <= GPU_CAP + 1e-9 for d in chosen)
        else:
            free = [d for d in devices if used[d] + need <= GPU_CAP + 1e-9]
            chosen = [max(free, key=lambda d: -used[d])] if free else []
            ok = bool(free)
        if not ok:
            fits = False
            out.append(
                replace(
                    make_plan(request.name, util=need, devices=tuple(devices[:tp]), tp=tp, source=meta.ref),
                    fits=False,
                    reason=f"needs {need:.2f} of a GPU, no GPU has that much left",
                    suggestions=("use a smaller model",),
                )
            )
            continue
        for d in chosen:
            used[d] += need
        out.append(
            make_plan(
                request.name,
                util=need,
                devices=tuple(chosen),
                tp=tp,
                source=meta.ref,
                max_model_len=request.max_model_len or 4096,
                weights_bytes=meta.weights_bytes,
            )
        )
    return FakePlan(tuple(out), tuple(devices), fits)


FAKE_SHA = "0123456789abcdef0123456789abcdef01234567"


class FakeDownloader:
    """Writes a small model folder like a finished Hub download and returns its commit."""

    def __init__(self, sha=FAKE_SHA, fail_after=None):
        self.sha = sha
        self.calls = []
        self.fail_after = fail_after

    def __call__(self, repo_id, dest, *, revision=None, plan=None, on_progress=ignore_progress, cancel=None):
        self.calls.append((repo_id, Path(dest), revision))
        if self.fail_after is not None and len(self.calls) > self.fail_after:
            raise ModelwizError(f"download of {repo_id} failed: 503 Service Unavailable")
        write_model_folder(Path(dest))
        return DownloadResult(path=Path(dest), sha=revision or self.sha, repo_id=repo_id)


def write_model_folder(folder: Path, *, params: int = 64) -> Path:
    """A tiny real Hugging Face model folder: config.json + a valid safetensors file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(
        json.dumps(
            {
                "architectures": ["LlamaForCausalLM"],
                "hidden_size": 64,
                "num_attention_heads": 4,
                "num_key_value_heads": 4,
                "num_hidden_layers": 2,
                "max_position_embeddings": 4096,
                "vocab_size": 128,
                "torch_dtype": "bfloat16",
            }
        )
    )
    header = json.dumps({"w": {"dtype": "BF16", "shape": [params], "data_offsets": [0, 2 * params]}}).encode()
    header += b" " * (-len(header) % 8)
    (folder / "model.safetensors").write_bytes(struct.pack("<Q", len(header)) + header + b"\0" * (2 * params))
    return folder


def fake_meta_loader(ref: str) -> FakeMeta:
    big = "70b" in ref.lower()
    return FakeMeta(ref, (140 if big else 14) * 1024**3, tp=4 if big else 1)


class FakeReader:
    """Metadata by name (`fake_meta_loader`: "70b" in the name is a 4-GPU model), and download
    plans of nothing to fetch at `sha`."""

    def __init__(self, sha=FAKE_SHA):
        self.sha = sha

    def meta(self, source, revision=None):
        return fake_meta_loader(source)

    def download_plan(self, source, dest, revision=None):
        return DownloadPlan(source, Path(dest), revision or self.sha, {}, (), frozenset(), 0, revision)
