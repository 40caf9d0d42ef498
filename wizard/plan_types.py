"""The plan's data: what the planner decides per model, in the shape `modelwiz plan --json` prints.

Field names are a contract other tools read (issue: `modelwiz plan`). The manifest stores plans in
this shape too, so `from_json(to_json(p)) == p` must hold.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class InstanceGroup:
    """Triton's instance_group for the model. `gpus` are host GPU indices (NVML order).

    KIND_GPU: one engine per listed GPU (tensor_parallel_size 1). KIND_MODEL: count 1, the
    engine spans tensor_parallel_size GPUs (listed in `gpus` for placement; Triton gets no ids).
    """

    kind: str  # "KIND_GPU" | "KIND_MODEL"
    count: int
    gpus: tuple[int, ...]


@dataclass(frozen=True)
class ModelPlan:
    model: str  # the source: a Hub repo id or a local directory
    name: str  # the Triton model name
    fits: bool
    reason: str  # why these settings, or why it does not fit
    tensor_parallel_size: int
    gpu_memory_utilization: float
    max_model_len: int
    dtype: str | None  # None: let vLLM pick ("auto")
    instance_group: InstanceGroup
    weights_bytes: int
    kv_cache_bytes_per_token: int  # per GPU of the engine
    kv_cache_tokens: int  # expected KV pool per engine, in tokens
    max_concurrency: float  # full-length requests the pool holds at once
    suggestions: tuple[str, ...] = ()  # what would make it fit, when it does not
    kv_cache_dtype: str | None = None  # "fp8" when the planner chose it
    devices: tuple[str, ...] = ()  # CDI ids of the devices used ("0", "1:0" for MIG)
    extra: dict[str, Any] = field(default_factory=dict, hash=False, compare=False)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["instance_group"] = {
            "kind": self.instance_group.kind,
            "count": self.instance_group.count,
            "gpus": list(self.instance_group.gpus),
        }
        data["suggestions"] = list(self.suggestions)
        data["devices"] = list(self.devices)
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> ModelPlan:
        ig = data["instance_group"]
        return cls(
            model=data["model"],
            name=data["name"],
            fits=bool(data["fits"]),
            reason=data.get("reason", ""),
            tensor_parallel_size=int(data["tensor_parallel_size"]),
            gpu_memory_utilization=float(data["gpu_memory_utilization"]),
            max_model_len=int(data["max_model_len"]),
            dtype=data.get("dtype"),
            instance_group=InstanceGroup(ig["kind"], int(ig["count"]), tuple(int(g) for g in ig["gpus"])),
            weights_bytes=int(data["weights_bytes"]),
            kv_cache_bytes_per_token=int(data["kv_cache_bytes_per_token"]),
            kv_cache_tokens=int(data["kv_cache_tokens"]),
            max_concurrency=float(data["max_concurrency"]),
            suggestions=tuple(data.get("suggestions", ())),
            kv_cache_dtype=data.get("kv_cache_dtype"),
            devices=tuple(str(d) for d in data.get("devices", ())),
            extra=dict(data.get("extra", {})),
        )


def container_gpu_ids(used_devices: list[str] | tuple[str, ...], device: str) -> int:
    """The index a device gets inside a container that was given `used_devices` through CDI.

    The launcher mounts exactly the plan's devices, sorted with `sort_devices`; inside, CUDA and
    Triton number them 0..n-1 in that order. config.pbtxt must use these container-local ids.
    """
    return list(sort_devices(used_devices)).index(device)


def sort_devices(devices: list[str] | tuple[str, ...] | set[str]) -> tuple[str, ...]:
    """Stable order of CDI ids: by GPU index, then MIG slice ("0" < "0:1" < "1")."""

    def key(d: str) -> tuple[int, int]:
        gpu, _, mig = d.partition(":")
        return int(gpu), (int(mig) + 1 if mig else 0)

    return tuple(sorted(set(devices), key=key))
