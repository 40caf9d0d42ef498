"""The planner's decisions on real models' configs and described GPUs."""

from __future__ import annotations

from dataclasses import replace

import pytest

from tests.planner_data import PLAN_MODEL_FIELDS, meta
from wizard.errors import UsageError
from wizard.gpus import Gpu, GpuInventory, describe
from wizard.plan_types import ModelPlan
from wizard.planner import (
    MAX_UTILIZATION_PER_GPU,
    ModelRequest,
    context_bytes,
    plan_models,
)
from wizard.units import GiB


def plan(spec_or_inventory, *names, **kwargs):
    inventory = describe(spec_or_inventory) if isinstance(spec_or_inventory, str) else spec_or_inventory
    requests = [ModelRequest(meta(n), n.lower()) for n in names]
    return plan_models(inventory, requests, **kwargs)


def engines_fit(result) -> None:
    """Every device: utilizations sum to <= 0.95 and budgets plus contexts fit in free memory."""
    for gpu in result.inventory.devices:
        on = [m for m in result.models if m.fits and gpu.cdi_id in m.devices]
        used = sum(m.gpu_memory_utilization * gpu.cuda_total_bytes + context_bytes(m.tensor_parallel_size) for m in on)
        assert used <= gpu.memory_free_bytes
        assert sum(m.gpu_memory_utilization for m in on) <= MAX_UTILIZATION_PER_GPU + 1e-9


# ---- calibration cases: deployments known to run ---------------------------------------------


@pytest.mark.parametrize("spec", ["2xH100-80GB", "2xA100-80GB"])
def test_llama_70b_bf16_fits_on_two_80gb_gpus_at_tp2(spec):
    result = plan(spec, "Llama-3.1-70B")
    m = result.models[0]
    assert result.fits and m.fits
    assert m.tensor_parallel_size == 2
    assert m.instance_group.kind == "KIND_MODEL" and m.instance_group.count == 1
    assert m.instance_group.gpus == (0, 1) and m.devices == ("0", "1")
    assert 0.85 <= m.gpu_memory_utilization <= 0.95
    assert 15_000 <= m.max_model_len <= 40_000  # deployments run 20k on this
    assert m.kv_cache_bytes_per_token == 160 * 1024
    assert m.max_concurrency >= 1
    engines_fit(result)


@pytest.mark.parametrize("spec", ["L4", "RTX4090", "A10G"])
def test_llama3_8b_fits_one_24gb_card_at_a_reduced_context(spec):
    m = plan(spec, "Llama-3.1-8B").models[0]
    assert m.fits and m.tensor_parallel_size == 1
    assert 16_384 <= m.max_model_len < 131_072
    assert "longest that fits" in m.reason
    assert m.instance_group.kind == "KIND_GPU" and m.instance_group.gpus == (0,)


def test_llama3_8b_gets_its_full_context_on_an_80gb_card():
    m = plan("H100-80GB", "Llama-3.1-8B").models[0]
    assert m.fits and m.max_model_len == 131_072 and m.tensor_parallel_size == 1
    # By default the engine gets what one full-length request needs (16 GiB of KV), the rest
    # stays free for models added later ...
    assert 1 <= m.max_concurrency < 1.5 and m.gpu_memory_utilization < 0.5
    # ... and with fill, the leftover becomes KV cache: ~57 GiB at 0.95.
    filled = plan("H100-80GB", "Llama-3.1-8B", fill=True).models[0]
    assert filled.max_concurrency >= 3
    assert filled.kv_cache_tokens == pytest.approx(57 * GiB / (128 * 1024), rel=0.1)


def test_llama2_7b_full_context_on_24gb():
    m = plan("RTX4090", "Llama-2-7b-hf").models[0]
    assert m.fits and m.max_model_len == 4096 and m.dtype is None
    assert m.kv_cache_bytes_per_token == 512 * 1024


# ---- what does not fit, and why -----------------------------------------------------------


def test_70b_on_one_80gb_card_needs_two():
    m = plan("H100-80GB", "Llama-3.1-70B").models[0]
    assert not m.fits
    assert "needs 131.4 GiB of weights; 1 GPU with 79.2 GiB; needs at least 2 such GPUs" in m.reason
    assert any("tensor_parallel_size 2" in s for s in m.suggestions)
    assert any("8-bit quantized variant" in s for s in m.suggestions)
    assert m.tensor_parallel_size == 0 and m.gpu_memory_utilization == 0


def test_mixtral_needs_two_80gb_cards_and_fits_on_them():
    assert "needs at least 2 such GPUs" in plan("H100-80GB", "Mixtral-8x7B-v0.1").models[0].reason
    m = plan("2xH100-80GB", "Mixtral-8x7B-v0.1").models[0]
    assert m.fits and m.tensor_parallel_size == 2 and m.max_model_len == 32768


def test_model_that_never_fits():
    m = plan("T4", "Llama-3.1-70B").models[0]
    assert not m.fits and "does not fit even on 8 such GPUs" in m.reason
    assert any("4-bit" in s for s in m.suggestions) is False  # 33 GiB does not fit a 16 GB card either


def test_explicit_context_that_does_not_fit_suggests_a_shorter_one():
    inventory = describe("L4")
    m = plan_models(inventory, [ModelRequest(meta("Llama-3.1-8B"), "x", max_model_len=131072)]).models[0]
    assert not m.fits and m.suggestions[0].startswith("a shorter context: --max-model-len ")
    shorter = int(m.suggestions[0].split()[-2])
    again = plan_models(inventory, [ModelRequest(meta("Llama-3.1-8B"), "x", max_model_len=shorter)])
    assert again.fits and again.models[0].max_model_len == shorter


def test_max_model_len_above_the_models_limit_is_bad_input():
    with pytest.raises(UsageError, match="above Llama-2-7b-hf's limit of 4096"):
        plan_models(describe("H100"), [ModelRequest(meta("Llama-2-7b-hf"), "x", max_model_len=8192)])


def test_explicit_context_is_kept_exactly():
    m = plan_models(describe("H100"), [ModelRequest(meta("Llama-3.1-8B"), "x", max_model_len=8000)]).models[0]
    assert m.fits and m.max_model_len == 8000


# ---- several engines ----------------------------------------------------------------------


def test_two_models_share_one_gpu_within_budget():
    result = plan("H100-80GB", "Llama-2-7b-hf", "Qwen2.5-0.5B")
    assert result.fits
    a, b = result.models
    assert a.devices == b.devices == ("0",)
    assert a.gpu_memory_utilization + b.gpu_memory_utilization <= 0.95 + 1e-9
    engines_fit(result)
    budget = result.gpus[0]
    assert {e.model for e in budget.engines} == {"llama-2-7b-hf", "qwen2.5-0.5b"}


def test_replicas_on_more_gpus_rather_than_tensor_parallel():
    m = plan("4xL4", "Llama-3.1-8B").models[0]
    assert m.fits and m.tensor_parallel_size == 1
    assert m.instance_group.kind == "KIND_GPU" and m.instance_group.gpus == (0, 1, 2, 3)
    assert m.devices == ("0", "1", "2", "3")


def test_models_spread_over_gpus_before_sharing():
    result = plan("2xH100-80GB", "Llama-3.1-8B", "Mistral-7B-v0.1")
    a, b = result.models
    assert {a.devices, b.devices} == {("0",), ("1",)}


def test_without_fill_utilization_is_what_the_context_needs():
    filled = plan("H100-80GB", "Llama-3.1-8B", fill=True).models[0]
    lean = plan("H100-80GB", "Llama-3.1-8B").models[0]
    assert lean.max_model_len == filled.max_model_len == 131072
    assert lean.gpu_memory_utilization < filled.gpu_memory_utilization == 0.95
    assert 1 <= lean.max_concurrency < 1.1  # one full-length request, rounded up to 1%


def test_memory_map_adds_up_to_the_device_total():
    result = plan("2xH100-80GB,L4", "Llama-3.1-70B", "Qwen2.5-0.5B")
    for g in result.gpus:
        parts = (
            g.driver_reserved_bytes
            + g.other_processes_bytes
            + g.weights_bytes
            + g.kv_cache_bytes
            + g.overhead_bytes
            + g.free_bytes
        )
        assert parts == g.total_bytes
        assert g.free_bytes > 0


# ---- GPUs: compute capability, other processes, MIG ---------------------------------------


def _gpu(index=0, name="Test GPU", total=24 * GiB, used=512 * 2**20, cc=(8, 9), **kw) -> Gpu:
    reserved = 512 * 2**20
    return Gpu(
        index=index,
        name=name,
        uuid=f"GPU-{index}",
        memory_total_bytes=total,
        memory_free_bytes=total - used,
        memory_used_bytes=used,
        memory_reserved_bytes=reserved,
        compute_capability=cc,
        **kw,
    )


def test_bfloat16_models_run_as_float16_below_compute_capability_8():
    assert plan("T4", "Qwen2.5-0.5B").models[0].dtype == "float16"
    assert plan("L4", "Qwen2.5-0.5B").models[0].dtype is None
    m = plan("T4", "Llama-2-7b-hf").models[0]  # already float16
    assert m.fits is False or m.dtype is None


def test_gpus_below_compute_capability_7_are_refused():
    inventory = GpuInventory(source="nvml", gpus=(_gpu(name="Tesla P100", total=16 * GiB, cc=(6, 0)),))
    result = plan(inventory, "Qwen2.5-0.5B")
    m = result.models[0]
    assert not m.fits and "compute capability 6.0 is below the 7.5" in m.reason
    assert result.gpus[0].usable is False


@pytest.mark.parametrize("spec", ["V100-32GB", "V100-16GB", "2xV100-32GB"])
def test_v100_is_refused_with_the_reason_naming_the_gpu(spec):
    # Triton's vLLM images need compute capability 7.5 from 25.01, and CUDA 13 (25.08 on) dropped Volta.
    result = plan(describe(spec), "Qwen2.5-0.5B")
    m = result.models[0]
    assert not m.fits
    assert "Tesla V100-SXM2" in m.reason and "compute capability 7.0 is below the 7.5" in m.reason
    assert "\n" not in m.reason and "7.5 or newer" in m.suggestions[0]
    assert all(not g.usable for g in result.gpus)


def test_t4_at_7_5_is_usable():
    assert plan(describe("T4"), "Qwen2.5-0.5B").models[0].fits


def test_memory_held_by_other_processes_is_respected():
    busy = GpuInventory(source="nvml", gpus=(_gpu(total=80 * GiB, used=55 * GiB),))
    m = plan(busy, "Llama-3.1-8B").models[0]
    assert m.fits and m.gpu_memory_utilization * (80 * GiB - 512 * 2**20) + context_bytes(1) <= 25 * GiB
    assert m.max_model_len < 131072
    full = GpuInventory(source="nvml", gpus=(_gpu(total=80 * GiB, used=70 * GiB),))
    m = plan(full, "Llama-3.1-8B").models[0]
    assert not m.fits and "other processes use" in m.reason
    assert any("stop the other processes" in s for s in m.suggestions)


def test_mig_slices_are_separate_devices_without_tensor_parallel():
    slices = tuple(
        _gpu(index=0, name="NVIDIA A100-SXM4-80GB MIG 3g.40gb", total=39 * GiB, mig_index=j) for j in range(2)
    )
    parent = _gpu(
        index=0, name="NVIDIA A100-SXM4-80GB", total=80 * GiB, cc=(8, 0), mig_enabled=True, mig_devices=slices
    )
    inventory = GpuInventory(source="nvml", gpus=(parent,))
    result = plan(inventory, "Llama-3.1-8B", "Qwen2.5-0.5B")
    a, b = result.models
    assert a.fits and b.fits and {a.devices, b.devices} == {("0:0",), ("0:1",)}
    m = plan(inventory, "Mixtral-8x7B-v0.1").models[0]  # 87 GiB: would need TP across slices
    assert not m.fits


# ---- re-runs: models already deployed ------------------------------------------------------


def test_existing_budgets_stay_fixed_and_new_models_use_what_is_left():
    inventory = describe("H100-80GB")
    first = plan_models(inventory, [ModelRequest(meta("Llama-3.1-8B"), "llama")], fill=False)
    deployed = first.models[0]
    second = plan_models(inventory, [ModelRequest(meta("Qwen2.5-0.5B"), "qwen")], existing=[deployed])
    (qwen,) = second.models
    assert qwen.fits and qwen.devices == ("0",)
    assert deployed.gpu_memory_utilization + qwen.gpu_memory_utilization <= 0.95 + 1e-9
    assert [e.existing for e in second.gpus[0].engines] == [True, False]


def test_full_gpu_suggests_replanning_the_deployed_models():
    inventory = describe("H100-80GB")
    deployed = plan_models(inventory, [ModelRequest(meta("Llama-3.1-8B"), "llama")], fill=True).models[0]
    assert deployed.gpu_memory_utilization == 0.95
    second = plan_models(inventory, [ModelRequest(meta("Qwen2.5-0.5B"), "qwen")], existing=[deployed])
    assert not second.fits
    assert any("re-plan the models already deployed" in s for s in second.models[0].suggestions)
    joint = plan_models(
        inventory,
        [ModelRequest(meta("Qwen2.5-0.5B"), "qwen")],
        existing=[deployed],
        existing_meta={"llama": meta("Llama-3.1-8B")},
        replan_existing=True,
    )
    assert joint.fits and [m.name for m in joint.models] == ["qwen", "llama"]
    assert any(c.name == "llama" and c.setting == "gpu_memory_utilization" and c.old == 0.95 for c in joint.changes)
    engines_fit(joint)


def test_existing_running_counts_their_memory_once():
    inventory = describe("H100-80GB")
    deployed = plan_models(inventory, [ModelRequest(meta("Qwen2.5-0.5B"), "qwen")], fill=False).models[0]
    gpu = inventory.gpus[0]
    held = int(deployed.gpu_memory_utilization * gpu.cuda_total_bytes) + context_bytes(1)
    running = replace(
        inventory,
        gpus=(
            replace(
                gpu, memory_free_bytes=gpu.memory_free_bytes - held, memory_used_bytes=gpu.memory_used_bytes + held
            ),
        ),
    )
    new = [ModelRequest(meta("Llama-3.1-8B"), "llama")]
    assert (
        plan_models(running, new, existing=[deployed], existing_running=True).models[0].gpu_memory_utilization
        == plan_models(inventory, new, existing=[deployed]).models[0].gpu_memory_utilization
    )


def test_replan_without_metadata_and_duplicate_names_are_usage_errors():
    inventory = describe("H100-80GB")
    deployed = plan_models(inventory, [ModelRequest(meta("Qwen2.5-0.5B"), "qwen")]).models[0]
    with pytest.raises(UsageError, match="without its model metadata"):
        plan_models(inventory, [], existing=[deployed], replan_existing=True)
    with pytest.raises(UsageError, match="two models are named 'qwen'"):
        plan_models(inventory, [ModelRequest(meta("Qwen2.5-0.5B"), "qwen")], existing=[deployed])


# ---- the JSON contract ---------------------------------------------------------------------


def test_to_json_has_the_issue_field_names_and_round_trips():
    result = plan("2xH100-80GB", "Llama-3.1-70B", "Llama-3.1-8B")
    data = result.to_json()
    assert data["gpus"] == describe("2xH100-80GB").to_json()["gpus"]
    for model in data["models"]:
        assert set(model) >= PLAN_MODEL_FIELDS
        assert set(model["instance_group"]) == {"kind", "count", "gpus"}
        assert ModelPlan.from_json(model) == next(m for m in result.models if m.name == model["name"])


def test_longest_placeable_terminates_when_the_floor_is_not_a_multiple_of_256():
    # Regression: bisecting on multiples of 256 between 1024 and 1290 never moved (hypothesis found it).
    import threading

    from tests.planner_data import meta
    from wizard.gpus import describe
    from wizard.planner import ModelRequest, _devices, _longest_placeable, default_vllm_version
    from wizard.vllm_memory import profile_for

    request = ModelRequest(meta("Qwen2.5-0.5B"), "q", max_model_len=1290)
    devices = _devices(describe("H100"), (), False)
    profile = profile_for(default_vllm_version())
    result: list[int | None] = []
    worker = threading.Thread(target=lambda: result.append(_longest_placeable(request, devices, profile)), daemon=True)
    worker.start()
    worker.join(timeout=10)
    assert result == [1024]


def test_multi_gpu_models_share_the_servers_first_gpus():
    # Triton's vLLM backend runs a KIND_MODEL (tensor parallel) engine on the container's first
    # tp GPUs whatever the plan says: two 70B models cannot be spread over GPUs 0-1 and 2-3.
    from tests.planner_data import meta

    inventory = describe("4xH100-80GB")
    result = plan_models(
        inventory, [ModelRequest(meta("Llama-3.1-70B"), "a"), ModelRequest(meta("Llama-3.1-70B"), "b")]
    )
    a, b = result.models
    assert a.fits and a.devices == ("0", "1") and a.instance_group.kind == "KIND_MODEL"
    assert not b.fits
    assert "first GPUs (0, 1)" in b.reason
    assert any("second Triton server" in s for s in b.suggestions)
    # A single-GPU model still goes where there is room.
    mixed = plan_models(inventory, [ModelRequest(meta("Llama-3.1-70B"), "a"), ModelRequest(meta("Llama-3.1-8B"), "s")])
    assert mixed.fits and mixed.models[0].devices == ("0", "1") and set(mixed.models[1].devices) <= {"2", "3"}


def test_only_running_models_are_added_back_to_nvml_free_memory():
    # Deployed a and d; the server has loaded a only (d's download is unfinished), and another
    # process holds 25 GiB. NVML's free memory lacks a and that process; d still needs its room.
    # Adding d's footprint back as well would count the other process's memory as free.
    from dataclasses import replace as _replace

    from tests.planner_data import meta
    from wizard.gpus import GpuProcess

    idle = describe("H100-80GB")
    a, d = plan_models(idle, [ModelRequest(meta("Llama-3.1-8B"), n, max_model_len=8192) for n in "ad"]).models
    assert a.fits and d.fits
    held = 25 * GiB + int(a.gpu_memory_utilization * idle.gpus[0].cuda_total_bytes) + GiB // 2
    gpu = _replace(
        idle.gpus[0],
        memory_free_bytes=idle.gpus[0].memory_free_bytes - held,
        memory_used_bytes=idle.gpus[0].memory_used_bytes + held,
        processes=(GpuProcess(1, 25 * GiB),),
    )
    now = _replace(idle, gpus=(gpu,), source="nvml")
    new = [ModelRequest(meta("Llama-3.1-8B"), "c", max_model_len=8192)]
    assert plan_models(now, new, existing=[a, d], existing_running=True).fits  # the double count
    assert not plan_models(now, new, existing=[a, d], existing_running={"a"}).fits  # the truth


# ---- margins, filling, reserve, concurrency --------------------------------------------------


def test_filled_plans_share_the_gpus_in_proportion_to_need():
    result = plan("H100-80GB", "Llama-3.1-8B", "Qwen2.5-0.5B", fill=True)
    big, small = result.models
    assert big.devices == small.devices == ("0",)
    assert big.gpu_memory_utilization + small.gpu_memory_utilization >= 0.85
    lean = plan("H100-80GB", "Llama-3.1-8B", "Qwen2.5-0.5B", fill=False)
    lean_big, lean_small = lean.models
    # Each keeps at least its share: the one that needed more gets more of the leftover.
    assert big.gpu_memory_utilization - lean_big.gpu_memory_utilization > (
        small.gpu_memory_utilization - lean_small.gpu_memory_utilization
    )
    engines_fit(result)


def test_reserve_keeps_memory_free_on_every_gpu():
    result = plan("2xH100-80GB", "Llama-3.1-8B", fill=True, reserve_bytes=20 * GiB)
    for budget in result.gpus:
        assert budget.free_bytes >= 20 * GiB
        assert budget.reserved_bytes == 20 * GiB
    assert result.models[0].fits
    with pytest.raises(UsageError, match="cannot be negative"):
        plan("H100-80GB", "Llama-3.1-8B", reserve_bytes=-1)


def test_the_margin_is_its_own_part_of_the_memory_map():
    result = plan("H100-80GB", "Llama-3.1-8B", fill=True)
    (budget,) = result.gpus
    (engine,) = budget.engines
    m = result.models[0]
    assert budget.margin_bytes == engine.margin_bytes >= m.extra["margin_bytes_per_gpu"] > 0
    assert 0 < budget.overhead_without_margin_bytes < budget.overhead_bytes  # the margin is part of it
    # The KV cache the map counts on is vLLM's pool less the margin.
    assert engine.kv_cache_bytes == m.extra["kv_cache_bytes_per_gpu"] - m.extra["margin_bytes_per_gpu"]
    assert "margin_bytes" in budget.to_json() and "margin_bytes" in budget.to_json()["engines"][0]


def test_fewer_than_four_full_length_requests_says_where_four_would_fit():
    m = plan("RTX4090", "Llama-3.1-8B", fill=True).models[0]
    assert m.fits and m.max_concurrency < 4
    assert f"fits, but only {m.max_concurrency:g} requests at {m.max_model_len:,} tokens; 4 at " in m.reason
    four = int(m.reason.rsplit("; 4 at ", 1)[1].split()[0].replace(",", ""))
    shorter = plan_models(describe("RTX4090"), [ModelRequest(meta("Llama-3.1-8B"), "x", max_model_len=four)], fill=True)
    assert shorter.models[0].max_concurrency >= 4
    assert "fits, but only" not in plan("H100-80GB", "Qwen2.5-0.5B", fill=True).models[0].reason


def test_a_pinned_tensor_parallel_size_is_kept_or_refused():
    inventory = describe("4xH100-80GB")
    m = plan_models(inventory, [ModelRequest(meta("Llama-3.1-8B"), "x", tensor_parallel_size=4)]).models[0]
    assert m.fits and m.tensor_parallel_size == 4 and m.devices == ("0", "1", "2", "3")
    with pytest.raises(UsageError, match="tensor_parallel_size 3"):
        plan_models(inventory, [ModelRequest(meta("Llama-3.1-8B"), "x", tensor_parallel_size=3)])


def test_the_plan_is_for_a_vllm_release():
    default = plan("H100-80GB", "Llama-3.1-8B")
    assert default.vllm_version == default.models[0].extra["vllm_version"]
    old = plan("H100-80GB", "Llama-3.1-8B", vllm_version="0.9.2")  # V0 inside Triton
    assert old.vllm_version == "0.9.2"
    # Before 0.21 the CUDA graphs are captured beside the budget; the plan keeps room for them.
    assert old.models[0].extra["outside_bytes_per_gpu"] > default.models[0].extra["outside_bytes_per_gpu"]


def test_cli_reserve_and_fill(tmp_path, capsys):
    import json

    from tests.planner_data import write_real_model_folder
    from wizard.cli import main

    folder = write_real_model_folder(tmp_path / "Qwen2.5-0.5B", "Qwen2.5-0.5B")
    assert main(["plan", str(folder), "--gpus", "L4", "--reserve", "8", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["budgets"][0]["free_bytes"] >= 8 * GiB and data["budgets"][0]["margin_bytes"] > 0
    assert main(["plan", str(folder), "--gpus", "L4", "--fill", "--json"]) == 0
    filled = json.loads(capsys.readouterr().out)
    assert filled["models"][0]["gpu_memory_utilization"] >= 0.85
    with pytest.raises(SystemExit) as exit_info:
        main(["plan", str(folder), "--gpus", "L4", "--reserve", "-2"])
    assert exit_info.value.code == 2 and "--reserve" in capsys.readouterr().err


def test_vllm_before_064_gets_a_gpu_of_its_own():
    # Its gpu_memory_utilization capped the whole GPU (every process's memory counted), so a
    # second engine on the same GPU would find its budget already used.
    shared = plan("H100-80GB", "Qwen2.5-0.5B", "Llama-2-7b-hf", vllm_version="0.6.4")
    assert shared.fits and shared.models[0].devices == shared.models[1].devices
    alone = plan("H100-80GB", "Qwen2.5-0.5B", "Llama-2-7b-hf", vllm_version="0.5.5")
    assert [m.fits for m in alone.models] == [False, True]
    assert "each engine needs a GPU of its own" in alone.models[0].reason
    spread = plan("2xH100-80GB", "Qwen2.5-0.5B", "Llama-2-7b-hf", vllm_version="0.5.5")
    assert spread.fits and {spread.models[0].devices, spread.models[1].devices} == {("0",), ("1",)}
