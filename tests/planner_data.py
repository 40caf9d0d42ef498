"""Test data for the planner: real models' config.json and parameter counts, safetensors writers,
and public vLLM deployments with what vLLM measured (the planner's calibration evidence)."""

from __future__ import annotations

import json
import struct
from dataclasses import dataclass, replace
from pathlib import Path

from wizard.gpus import Gpu, GpuInventory
from wizard.model_meta import ModelMeta
from wizard.plan_types import ModelPlan
from wizard.units import GiB, MiB
from wizard.vllm_memory import (
    KV_BLOCK_TOKENS,
    Engine,
    VllmProfile,
    activation_bytes,
    budget_bytes,
    engine_cost,
    has_peer_to_peer,
    kv_pool_tokens,
    kv_view,
    profile_for,
)

CONFIGS = Path(__file__).parent / "data" / "configs"
MODELS = (
    "Llama-2-7b-hf",
    "Llama-3.1-8B",
    "Llama-3.1-70B",
    "Mistral-7B-v0.1",
    "Mixtral-8x7B-v0.1",
    "Qwen2.5-0.5B",
    "DeepSeek-V2-Lite",
)


def config(name: str) -> dict:
    return json.loads((CONFIGS / name / "config.json").read_text())


def parameters(name: str) -> dict[str, int]:
    return json.loads((CONFIGS / name / "parameters.json").read_text())["parameters_by_dtype"]


def meta(name: str) -> ModelMeta:
    return ModelMeta.from_config(config(name), source=name, parameters_by_dtype=parameters(name))


_SIZES = {"F32": 4, "F16": 2, "BF16": 2, "I32": 4, "I8": 1, "U8": 1}


def write_safetensors(path: Path, tensors: dict[str, tuple[str, list[int]]], *, with_data: bool = True) -> None:
    """A safetensors file as the format defines it: u64 LE header length, JSON header, data.

    `with_data=False` writes only the header (a checkpoint far too large for a test, whose
    metadata is all the planner reads).
    """
    header: dict = {"__metadata__": {"format": "pt"}}
    offset = 0
    for name, (dtype, shape) in tensors.items():
        n = 1
        for d in shape:
            n *= d
        size = n * _SIZES[dtype]
        header[name] = {"dtype": dtype, "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # the format pads the header to 8 bytes with spaces
    with path.open("wb") as fh:
        fh.write(struct.pack("<Q", len(raw)))
        fh.write(raw)
        if with_data:
            fh.write(b"\0" * offset)


def qwen_tensors() -> dict[str, tuple[str, list[int]]]:
    """Qwen2.5-0.5B's real tensor layout (tied embeddings, q/k/v biases): 494,032,768 parameters."""
    t: dict[str, tuple[str, list[int]]] = {"model.embed_tokens.weight": ("BF16", [151936, 896])}
    for i in range(24):
        p = f"model.layers.{i}."
        t[p + "self_attn.q_proj.weight"] = ("BF16", [896, 896])
        t[p + "self_attn.q_proj.bias"] = ("BF16", [896])
        t[p + "self_attn.k_proj.weight"] = ("BF16", [128, 896])
        t[p + "self_attn.k_proj.bias"] = ("BF16", [128])
        t[p + "self_attn.v_proj.weight"] = ("BF16", [128, 896])
        t[p + "self_attn.v_proj.bias"] = ("BF16", [128])
        t[p + "self_attn.o_proj.weight"] = ("BF16", [896, 896])
        t[p + "mlp.gate_proj.weight"] = ("BF16", [4864, 896])
        t[p + "mlp.up_proj.weight"] = ("BF16", [4864, 896])
        t[p + "mlp.down_proj.weight"] = ("BF16", [896, 4864])
        t[p + "input_layernorm.weight"] = ("BF16", [896])
        t[p + "post_attention_layernorm.weight"] = ("BF16", [896])
    t["model.norm.weight"] = ("BF16", [896])
    return t


def model_dir(root: Path, name: str, *, total_size: int | None = None) -> Path:
    """A local model folder with the real config.json and an index carrying metadata.total_size."""
    folder = root / name
    folder.mkdir(parents=True)
    (folder / "config.json").write_text(json.dumps(config(name)))
    if total_size is None:
        total_size = sum(2 * n for n in parameters(name).values())
    index = {
        "metadata": {"total_size": total_size},
        "weight_map": {"lm_head.weight": "model-00001-of-00002.safetensors"},
    }
    (folder / "model.safetensors.index.json").write_text(json.dumps(index))
    return folder


def write_real_model_folder(folder: Path, name: str) -> Path:
    """A local model folder with `name`'s real config.json, its index (metadata.total_size) and one
    shard whose safetensors header holds the real parameter counts but no data (the size is read
    from the header; a folder without any weight file is refused as a model)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text((CONFIGS / name / "config.json").read_text())
    counts = parameters(name)
    total = sum(count * _SIZES[dtype] for dtype, count in counts.items())
    shard = "model-00001-of-00001.safetensors"
    tensors = {f"weights.{dtype}": (dtype, [count]) for dtype, count in counts.items()}
    write_safetensors(folder / shard, tensors, with_data=False)
    (folder / "model.safetensors.index.json").write_text(
        json.dumps({"metadata": {"total_size": total}, "weight_map": dict.fromkeys(tensors, shard)})
    )
    return folder


# ---- public vLLM deployments (tests/data/vllm_deployments.json) -----------------------------

DEPLOYMENTS = Path(__file__).parent / "data" / "vllm_deployments.json"


@dataclass(frozen=True)
class Deployment:
    """One public vLLM startup: the settings it ran with and what vLLM measured."""

    id: str
    source: str
    meta: ModelMeta
    gpu: Gpu  # one GPU of the deployment, idle, with the CUDA total vLLM reported
    tp: int
    max_model_len: int
    utilization: float
    vllm_version: str
    engine: Engine
    max_num_batched_tokens: int
    max_num_seqs: int
    kv_cache_tokens: int  # what vLLM reported (GPU KV cache size, or blocks x 16)
    kv_cache_bytes: int  # the KV pool per GPU that vLLM allocated
    started: bool

    @property
    def profile(self) -> VllmProfile:
        return profile_for(self.vllm_version, self.engine)

    def inventory(self) -> GpuInventory:
        gpus = tuple(replace(self.gpu, index=i, uuid=f"GPU-evidence-{i}") for i in range(self.tp))
        return GpuInventory(source="described", gpus=gpus)

    def one_request_bytes(self, length: int, max_num_batched_tokens: int) -> int:
        """KV one request of `length` needs per GPU on this vLLM (its admission check)."""
        view = kv_view(self.meta, self.profile)
        return view.kv_bytes_for_request(length, self.tp, max_num_batched_tokens, block=KV_BLOCK_TOKENS)

    def activation(self, max_num_batched_tokens: int, max_num_seqs: int) -> int:
        return activation_bytes(self.meta, self.tp, max_num_batched_tokens, max_num_seqs, self.profile)


def deployments() -> list[Deployment]:
    data = json.loads(DEPLOYMENTS.read_text())
    out = []
    for case in data["cases"]:
        model = data["models"][case["model"]]
        meta_ = ModelMeta.from_config(
            model["config"],
            source=model["repo_id"],
            parameters_by_dtype=model.get("parameters_by_dtype"),
            weights_bytes=model.get("weights_bytes"),
        )
        spec = data["gpus"][case["gpu"]]
        nvml_total = spec["nvml_total_mib"] * MiB
        cuda_total = int((case.get("gpu_cuda_total_gib") or spec["cuda_total_gib"]) * GiB)
        major, minor = (int(x) for x in spec["compute_capability"].split("."))
        gpu = Gpu(
            index=0,
            name=spec["name"],
            uuid="GPU-evidence-0",
            memory_total_bytes=nvml_total,
            memory_free_bytes=cuda_total,
            memory_used_bytes=nvml_total - cuda_total,
            memory_reserved_bytes=nvml_total - cuda_total,
            compute_capability=(major, minor),
        )
        measured = case["measured"]
        out.append(
            Deployment(
                id=case["id"],
                source=case["source"],
                meta=meta_,
                gpu=gpu,
                tp=case["tensor_parallel_size"],
                max_model_len=case["max_model_len"],
                utilization=case["gpu_memory_utilization"],
                vllm_version=case["vllm_version"],
                engine=case["engine"],
                max_num_batched_tokens=case["max_num_batched_tokens"],
                max_num_seqs=case["max_num_seqs"],
                kv_cache_tokens=measured["kv_cache_tokens"],
                kv_cache_bytes=int(measured["kv_cache_gib"] * GiB),
                started=measured["started"],
            )
        )
    return out


def predicted_cost(case: Deployment):  # -> wizard.vllm_memory's engine cost
    """The planner's non-KV memory of one engine at the deployment's own settings."""
    return engine_cost(
        case.meta,
        case.tp,
        profile=case.profile,
        max_num_batched_tokens=case.max_num_batched_tokens,
        max_num_seqs=case.max_num_seqs,
        peer_to_peer=has_peer_to_peer(case.gpu.name),
    )


def predicted_pool_bytes(case: Deployment) -> int:
    """The planner's KV-cache pool (bytes per engine) for the deployment's own settings."""
    return budget_bytes(case.utilization, case.gpu.cuda_total_bytes) - predicted_cost(case).inside


def predicted_kv_tokens(case: Deployment) -> int:
    """The planner's KV cache (tokens per engine) for the deployment's own settings."""
    return kv_pool_tokens(predicted_pool_bytes(case), kv_view(case.meta, case.profile).kv_bytes_per_token(case.tp))


@dataclass(frozen=True)
class Replay:
    """modelwiz's default plan for a deployment's model, GPUs and vLLM, replayed on what vLLM measured.

    The real KV pool at the plan's utilization is the measured pool plus the utilization
    difference x the GPU's CUDA total (`pool`); `batch_pool` also corrects for the batch limits
    modelwiz passes (the predicted activation at the deployment's limits minus at the plan's).
    It starts when the pool holds one request of the plan's max_model_len.
    """

    plan: ModelPlan
    need: int
    pool: int
    batch_pool: int

    @property
    def starts(self) -> bool:
        return self.plan.fits and self.pool >= self.need

    @property
    def starts_with_plan_batch(self) -> bool:
        return self.plan.fits and self.batch_pool >= self.need


def replay(case: Deployment, plan: ModelPlan) -> Replay:
    delta = budget_bytes(plan.gpu_memory_utilization, case.gpu.cuda_total_bytes) - budget_bytes(
        case.utilization, case.gpu.cuda_total_bytes
    )
    pool = case.kv_cache_bytes + delta
    mnbt = int(plan.extra.get("max_num_batched_tokens", case.max_num_batched_tokens))
    seqs = int(plan.extra.get("max_num_seqs", case.max_num_seqs))
    lighter = case.activation(case.max_num_batched_tokens, case.max_num_seqs) - case.activation(mnbt, seqs)
    return Replay(
        plan=plan, need=case.one_request_bytes(plan.max_model_len, mnbt), pool=pool, batch_pool=pool + lighter
    )


# The per-model fields of `modelwiz plan --json` (a contract: other tools read them).
PLAN_MODEL_FIELDS = frozenset(
    {
        "model",
        "name",
        "fits",
        "reason",
        "tensor_parallel_size",
        "gpu_memory_utilization",
        "max_model_len",
        "dtype",
        "instance_group",
        "weights_bytes",
        "kv_cache_bytes_per_token",
        "kv_cache_tokens",
        "max_concurrency",
    }
)
