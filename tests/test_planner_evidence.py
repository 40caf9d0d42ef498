"""The planner against public vLLM deployments: what vLLM measured at startup (tests/data/vllm_deployments.json).

For each deployment the planner's KV cache at the deployment's own settings must be close to what
vLLM reported, and modelwiz's default plan for the same model, GPUs and vLLM release must start
when replayed on what vLLM measured (tests.planner_data.Replay).
"""

from __future__ import annotations

import statistics

import pytest

from tests.planner_data import (
    Deployment,
    deployments,
    predicted_cost,
    predicted_kv_tokens,
    predicted_pool_bytes,
    replay,
)
from wizard.planner import MAX_UTILIZATION_PER_GPU, ModelRequest, headroom_bytes, margin_bytes, plan_models
from wizard.vllm_memory import kv_view

CASES = deployments()
IDS = [c.id for c in CASES]
# modelwiz's own batch (and V0's chunked prefill) keeps activations below what a deployment that
# batched its whole context measured; the literal replay is fair to the plan up to this batch.
PLAN_BATCH_TOKENS = 8192


def default_plan(case: Deployment):  # -> Plan
    """What `modelwiz plan` makes of the deployment's model on its GPUs (it fills them)."""
    request = ModelRequest(case.meta, "m", tensor_parallel_size=case.tp)
    return plan_models(case.inventory(), [request], vllm_version=case.vllm_version, fill=True)


def test_the_evidence_is_broad():
    assert len(CASES) >= 20
    assert all(c.source.startswith("https://github.com/") for c in CASES)
    assert any(c.meta.is_moe for c in CASES) and any(c.meta.is_mla for c in CASES)
    assert any(c.meta.sliding_window_layers for c in CASES)
    assert any(not (c.meta.is_moe or c.meta.is_mla or c.meta.sliding_window_layers) for c in CASES)
    assert {1, 2, 4} <= {c.tp for c in CASES}
    assert {c.engine for c in CASES} == {"V0", "V1"}
    assert len({c.gpu.name for c in CASES}) >= 5
    assert len({c.vllm_version for c in CASES}) >= 8


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_kv_cache_tokens_match_what_vllm_reported(case):
    predicted = predicted_kv_tokens(case)
    assert predicted == pytest.approx(case.kv_cache_tokens, rel=0.10)


def test_kv_cache_token_errors_overall():
    errors = [abs(predicted_kv_tokens(c) - c.kv_cache_tokens) / c.kv_cache_tokens for c in CASES]
    assert statistics.median(errors) <= 0.05
    assert max(errors) <= 0.15


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_planner_agrees_with_vllm_on_whether_it_started(case):
    pool = predicted_pool_bytes(case)
    assert (pool >= case.one_request_bytes(case.max_model_len, case.max_num_batched_tokens)) == case.started


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_default_plan_would_have_started(case):
    plan = default_plan(case)
    m = plan.models[0]
    assert m.fits and m.tensor_parallel_size == case.tp
    assert m.extra["vllm_version"] == case.profile.release
    result = replay(case, m)
    assert result.starts_with_plan_batch, (result.batch_pool, result.need)
    if case.max_num_batched_tokens <= PLAN_BATCH_TOKENS:
        assert result.starts, (result.pool, result.need)
    # The margin is in the memory map, and the GPUs are put to work: the budgets reach vLLM's cap
    # of 0.95, or only the headroom (and a 1% step) stays free.
    for budget in plan.gpus:
        assert budget.margin_bytes > 0 and budget.to_json()["margin_bytes"] == budget.margin_bytes
        full = budget.utilization >= MAX_UTILIZATION_PER_GPU - 1e-9
        assert full or budget.free_bytes <= headroom_bytes(case.gpu) + budget.total_bytes // 100


def test_mla_is_compressed_only_from_the_vllm_that_supports_it():
    (case,) = [c for c in CASES if c.meta.is_mla]
    old = plan_models(case.inventory(), [ModelRequest(case.meta, "m", max_model_len=8192)], vllm_version="0.6.4")
    new = plan_models(case.inventory(), [ModelRequest(case.meta, "m", max_model_len=8192)], vllm_version="0.7.1")
    # Before 0.7.1 vLLM kept 16 heads of K and V padded to 256 per layer: 14 x the latent.
    assert old.models[0].kv_cache_bytes_per_token == 27 * 2 * 16 * 256 * 2
    assert new.models[0].kv_cache_bytes_per_token == 27 * 576 * 2
    assert kv_view(case.meta, case.profile).is_mla


def test_the_plan_follows_the_vllm_release():
    (v16,) = [c for c in CASES if c.id == "llmd-sweep-0.16.0-qwen3-14b"]
    (v17,) = [c for c in CASES if c.id == "llmd-sweep-0.17.0-qwen3-14b"]
    # 0.17 cut the sampler's warm-up peak from ~10 to ~3.9 logit copies: 3.4 GiB more KV cache.
    assert predicted_kv_tokens(v17) - predicted_kv_tokens(v16) == pytest.approx(
        v17.kv_cache_tokens - v16.kv_cache_tokens, rel=0.15
    )
    # From 0.21 the CUDA graphs come out of the budget; before, they stay free beside it.
    before = default_plan(v17).models[0]
    after = plan_models(v17.inventory(), [ModelRequest(v17.meta, "m")], vllm_version="0.21.0", fill=True).models[0]
    assert before.extra["outside_bytes_per_gpu"] > after.extra["outside_bytes_per_gpu"]
    assert before.extra["non_kv_bytes_per_gpu"] < after.extra["non_kv_bytes_per_gpu"]


@pytest.mark.parametrize("case", [c for c in CASES if c.id != "vllm-pr10511-h100-llama3-8b"], ids=lambda c: c.id)
def test_the_margin_covers_what_the_estimate_misses(case):
    # Where vLLM measured more non-KV memory than estimated, the KV pool came out smaller than
    # planned; the margin the plan keeps must cover that. (The excluded case is a 0.6.5
    # development build that measured 1.79 GiB of non-torch memory on one GPU.)
    assert predicted_pool_bytes(case) - case.kv_cache_bytes <= margin_bytes(predicted_cost(case))
