"""Invariants of the planner for any inventory and model set (hypothesis)."""

from __future__ import annotations

from dataclasses import replace

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.planner_data import MODELS, meta
from wizard.gpu_catalog import CATALOG
from wizard.gpus import GpuInventory, describe
from wizard.planner import MAX_UTILIZATION_PER_GPU, ModelRequest, context_bytes, plan_models

METAS = {name: meta(name) for name in MODELS}


@st.composite
def inventories(draw):
    kinds = draw(st.lists(st.sampled_from([m.key for m in CATALOG]), min_size=1, max_size=4))
    counts = [draw(st.integers(1, 2)) for _ in kinds]
    base = describe(",".join(f"{n}x{k}" for n, k in zip(counts, kinds, strict=True)))
    gpus = []
    for gpu in base.gpus:
        busy = int(draw(st.floats(0, 0.9)) * gpu.memory_free_bytes)  # other processes
        gpus.append(
            replace(gpu, memory_free_bytes=gpu.memory_free_bytes - busy, memory_used_bytes=gpu.memory_used_bytes + busy)
        )
    return GpuInventory(source="nvml", gpus=tuple(gpus))


@st.composite
def requests(draw):
    names = draw(st.lists(st.sampled_from(MODELS), min_size=1, max_size=4))
    out = []
    for i, name in enumerate(names):
        m = METAS[name]
        length = draw(st.one_of(st.none(), st.integers(256, m.derived_max_model_len)))
        conc = draw(st.integers(1, 3))
        out.append(ModelRequest(m, f"m{i}", max_model_len=length, min_concurrency=conc))
    return out


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(inventories(), requests(), st.booleans())
def test_no_budget_exceeded_and_settings_valid(inventory, reqs, fill):
    result = plan_models(inventory, reqs, fill=fill)
    by_name = {r.name: r for r in reqs}
    for gpu in inventory.devices:
        on = [m for m in result.models if m.fits and gpu.cdi_id in m.devices]
        footprint = sum(
            m.gpu_memory_utilization * gpu.cuda_total_bytes + context_bytes(m.tensor_parallel_size) for m in on
        )
        assert footprint <= gpu.memory_free_bytes  # CUDA contexts included
        assert sum(m.gpu_memory_utilization for m in on) <= MAX_UTILIZATION_PER_GPU + 1e-9
    for m in result.models:
        request = by_name[m.name]
        if not m.fits:
            assert m.reason and m.devices == ()
            continue
        assert 0 < m.gpu_memory_utilization <= MAX_UTILIZATION_PER_GPU
        assert request.meta.valid_tensor_parallel(m.tensor_parallel_size)
        assert len(m.devices) >= m.tensor_parallel_size
        if m.tensor_parallel_size > 1:
            assert m.instance_group.kind == "KIND_MODEL" and len(m.devices) == m.tensor_parallel_size
            assert all(":" not in d for d in m.devices)  # never across MIG slices
        else:
            assert m.instance_group.kind == "KIND_GPU"
        assert request.floor_len <= m.max_model_len <= request.meta.derived_max_model_len
        if request.max_model_len:
            assert m.max_model_len == request.max_model_len
        assert m.max_concurrency >= request.min_concurrency - 1e-9  # vLLM's admission check holds
    for g in result.gpus:
        assert g.free_bytes >= 0
        assert (
            g.driver_reserved_bytes
            + g.other_processes_bytes
            + g.weights_bytes
            + g.kv_cache_bytes
            + g.overhead_bytes
            + g.free_bytes
        ) == g.total_bytes
