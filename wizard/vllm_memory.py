"""What one vLLM engine holds on each GPU besides its KV cache, per vLLM release.

vLLM sizes its KV cache as `ceil(util x cuda_total) - non-KV memory`, where the non-KV memory is what
its startup profiling measured: the weights, the torch peak of a dummy forward and sampler pass
("activation"), the non-torch increase (NCCL and custom all-reduce buffers), and, from 0.21 on, an
estimate of the CUDA graphs it is about to capture (vllm/v1/worker/gpu_worker.py,
determine_available_memory). What those terms come to changed from release to release; this module
holds one profile per release range, each term calibrated on the public deployments in
tests/data/vllm_deployments.json (cited per constant below, `llm-d` meaning
github.com/llm-d-incubation/llm-d-planner accuracy/results, logs of vLLM 0.15-0.19 on H100).

Everything here is per GPU of the engine's tensor-parallel group, in bytes.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, replace
from typing import Literal

from wizard.model_meta import ModelMeta
from wizard.units import GiB, MiB

Engine = Literal["V0", "V1"]

KV_BLOCK_TOKENS = 16  # vLLM's KV block on CUDA
FP32_BYTES = 4
ACTIVATION_BYTES = 2  # bf16/fp16 activations

# Weights: what "Model loading took" reports is the checkpoint's bytes / tp plus ~32 MiB of
# rotary caches and buffers (Llama-3.1-8B: 14.99 GiB logged for 14.96 GiB of safetensors, llm-d
# v0.19.0 tp1), and, with tp > 1, replicated norms and padded vocabulary shards: +0.1 to +0.45 %
# of the shard (Llama-3.1-8B tp2 7.51 vs 7.48, Qwen2.5-72B tp2 67.80 vs 67.71, Llama-3.3-70B fp8
# tp4 16.96 vs 16.92 GiB; llm-d v0.19.0). 0.25 % + 32 MiB covers them.
WEIGHT_BUFFERS_BYTES = 32 * MiB
TP_WEIGHT_ALLOWANCE = 0.0025

# Non-torch increase during profiling. One GPU: 0.13-0.35 GiB (llm-d 0.15-0.19: 0.13-0.27;
# vllm#10517 on an RTX 3090, 0.6.4: 0.35). With tp > 1 NCCL and the custom all-reduce buffers
# add ~2 GiB per GPU on V1 (llm-d v0.19.0: 2.06-2.21 GiB at tp 2 and 4) and up to 3.6 GiB on V0
# (vllm PR #10511, 0.6.5 on H100, Meta-Llama-3-8B tp2: "non_torch_memory 3.58GiB"). GeForce cards
# have no peer-to-peer access, so vLLM turns its custom all-reduce off there: vllm#13061 (2 x RTX
# 4090, tp2, 0.7) logs 0.25 GiB on one rank, and its other rank's pool is 1.23 GiB smaller.
NON_TORCH_SINGLE_BYTES = int(0.3 * GiB)
NON_TORCH_TP_V1_BYTES = int(2.2 * GiB)
NON_TORCH_TP_V0_BYTES = int(3.6 * GiB)
NON_TORCH_TP_NO_P2P_BYTES = int(1.5 * GiB)

# CUDA graphs: captured after the KV cache is sized (so outside gpu_memory_utilization) until
# 0.21, which estimates them first and takes them out of the budget ("CUDA graph memory profiling
# is enabled (default since v0.21.0)"). Size: llm-d v0.19.0 logged 0.51-1.85 GiB captured and
# 0.52-1.82 GiB estimated; 0.5 GiB + 2 % of the weights per GPU (+0.5 GiB with tp > 1) is at or
# above the estimate for all but one of them (Llama-3.1-8B tp2 estimated 1.69, captured 0.76).
GRAPHS_BASE_BYTES = GiB // 2
GRAPHS_WEIGHT_FRACTION = 0.02
GRAPHS_TP_BYTES = GiB // 2
GRAPHS_MAX_BYTES = 2 * GiB

# Outside gpu_memory_utilization: the engine's CUDA context, taken before vLLM's snapshot. llm-d
# v0.19.0 on H100: 0.51 GiB at tp1; 1.53-2.07 GiB per GPU at tp 2 and 4 (NCCL communicators).
CONTEXT_SINGLE_BYTES = int(0.6 * GiB)
CONTEXT_PARALLEL_BYTES = int(2.1 * GiB)

# Head size vLLM gave DeepSeek-V2/V3 attention before it supported MLA (qk head 192 padded to
# 256, one K and one V per head: vllm/model_executor/models/deepseek_v2.py before v0.7.1,
# `Attention(self.num_local_heads, 256, ...)  # TODO, support head_size 192`).
PRE_MLA_HEAD_SIZE = 256


@dataclass(frozen=True)
class VllmProfile:
    """How one vLLM release range profiles memory (see the constants above for the evidence)."""

    release: str  # the plain release, e.g. "0.19.0"
    engine: Engine
    # The sampler warm-up's torch peak, in fp32 logit rows of max_num_seqs x vocab. V1 before 0.17
    # kept ~10 copies (sorting for top-p/top-k); 0.17 cut it to ~3.85: Qwen3-14B on H100 logs
    # 5.64 GiB on 0.15/0.16 and 2.23 GiB on 0.17/0.18 (llm-d version sweep, 1024 seqs x 151,936);
    # Llama-3.1-8B on an L40S, 0.8.5: 5.6 GiB of non-KV overhead (vllm PR #17122). V0 warms the
    # sampler on one logit row per sequence (vllm#13061: 0.19 GiB in all for a 152k vocabulary).
    sampler_rows: float
    graphs_in_budget: bool  # >= 0.21: the CUDA graph estimate comes out of the KV budget
    # < 0.6.4: peak = total - free after profiling, so this process's CUDA context (and anything
    # else on the GPU) counted against gpu_memory_utilization (vllm PR #9352 changed it); the
    # engine-args help of those releases: "This is a global gpu memory utilization limit, for
    # example if 50% of the gpu memory is already used before vLLM starts and
    # --gpu-memory-utilization is set to 0.9, then only 40% of the gpu memory will be allocated".
    # Such an engine cannot share its GPU with another on a budget of its own.
    context_in_budget: bool
    mla: bool  # >= 0.7.1: DeepSeek's compressed (MLA) KV cache; before, full heads of 256
    hybrid_kv: bool  # V1 >= 0.10.0: sliding-window layers keep only their window (hybrid allocator)

    @property
    def shares_gpus(self) -> bool:
        """Whether two engines can each take a budget of the same GPU (per-instance utilization)."""
        return not self.context_in_budget

    @property
    def non_torch_tp_bytes(self) -> int:
        return NON_TORCH_TP_V1_BYTES if self.engine == "V1" else NON_TORCH_TP_V0_BYTES


def release_tuple(version: str) -> tuple[int, ...]:
    """`0.24.0+092c4842.nv26.7` -> (0, 24, 0); `0.9.0rc1+...` -> (0, 9, 0)."""
    match = re.match(r"^\s*v?(\d+(?:\.\d+)*)", version)
    if not match:
        return ()
    return tuple(int(p) for p in match.group(1).split("."))


def triton_engine(version: str) -> Engine:
    """The engine vLLM runs inside Triton's vLLM backend: V0 below 0.10.2.

    vLLM before 0.8 has only V0; 0.8-0.10.1 (Triton 25.04-25.09) falls back to V0 because the
    backend runs the engine in a background thread (the backend's CI asserts the fallback message
    on r25.06-r25.09); 0.10.2 (25.10) on run V1.
    """
    return "V0" if release_tuple(version) < (0, 10, 2) else "V1"


def profile_for(version: str, engine: Engine | None = None) -> VllmProfile:
    """The memory profile of vLLM `version` running `engine` (default: what Triton runs)."""
    release = release_tuple(version)
    engine = engine or triton_engine(version)
    if engine == "V0":
        rows = 1.0
    elif release < (0, 17):
        rows = 10.0
    else:
        rows = 3.85
    return VllmProfile(
        release=".".join(str(p) for p in release),
        engine=engine,
        sampler_rows=rows,
        graphs_in_budget=release >= (0, 21),
        context_in_budget=release < (0, 6, 4),
        mla=release >= (0, 7, 1),
        hybrid_kv=engine == "V1" and release >= (0, 10),
    )


def kv_view(meta: ModelMeta, profile: VllmProfile) -> ModelMeta:
    """The model as this vLLM lays out its KV cache (what kv_bytes_* should be asked)."""
    view = meta
    if meta.is_mla and not profile.mla:
        view = replace(
            view,
            kv_lora_rank=None,
            qk_rope_head_dim=None,
            num_kv_heads=meta.num_attention_heads,
            head_dim=PRE_MLA_HEAD_SIZE,
        )
    if view.sliding_window_layers and not profile.hybrid_kv:
        view = replace(view, sliding_window=None, sliding_window_layers=0)
    return view


@dataclass(frozen=True)
class EngineCost:
    """What one engine costs on one GPU, apart from its KV cache (bytes).

    `inside` is what vLLM subtracts from its budget before the KV cache; `context` and
    `graphs_outside` are held on top of the budget.
    """

    weights: int
    activation: int
    non_torch: int
    cuda_graphs: int  # inside the budget (vLLM >= 0.21), else 0
    context: int  # outside gpu_memory_utilization (inside for vLLM < 0.6.4, see `inside`)
    graphs_outside: int  # CUDA graphs captured after the KV cache is sized (vLLM < 0.21)
    context_in_budget: bool = False

    @property
    def inside(self) -> int:
        """The part of the utilization budget that is not KV cache."""
        held = self.weights + self.activation + self.non_torch + self.cuda_graphs
        return held + (self.context if self.context_in_budget else 0)

    @property
    def outside(self) -> int:
        """What the engine holds beyond its budget."""
        return (0 if self.context_in_budget else self.context) + self.graphs_outside


def context_bytes(tp: int) -> int:
    return CONTEXT_SINGLE_BYTES if tp == 1 else CONTEXT_PARALLEL_BYTES


def weights_per_gpu(meta: ModelMeta, tp: int) -> int:
    share = meta.weights_bytes // tp
    allowance = int(share * TP_WEIGHT_ALLOWANCE) if tp > 1 else 0
    return share + allowance + WEIGHT_BUFFERS_BYTES


def activation_bytes(
    meta: ModelMeta, tp: int, max_num_batched_tokens: int, max_num_seqs: int, profile: VllmProfile
) -> int:
    """The torch peak of vLLM's profiling run: the larger of a forward pass over
    `max_num_batched_tokens` and the sampler warm-up, plus the fused-MoE workspaces.

    Forward: the residual stream and attention projections (~4 x hidden) and the MLP's gate/up
    and activation (~3 x intermediate / tp), in 16 bits: CodeLlama-7B at 8192 tokens logs 0.77 GiB
    (llm-d v0.19.0), Llama-3.1-8B at 20,000 tokens 2.07 GiB (vllm#10517, V0 batching the whole
    context). MoE layers keep two workspaces of tokens x top-k x max(2 x expert width, hidden):
    Qwen3-30B-A3B 2.68 GiB (2.23 for its sampler alone), Mixtral tp2 1.21 GiB (llm-d v0.19.0).
    """
    tokens = max_num_batched_tokens
    if meta.is_moe:
        forward = tokens * 4 * meta.hidden_size * ACTIVATION_BYTES
        width = max(2 * (meta.moe_intermediate_size or meta.intermediate_size) // tp, meta.hidden_size)
        moe = 2 * tokens * max(1, meta.experts_per_token) * width * ACTIVATION_BYTES
    else:
        forward = tokens * (4 * meta.hidden_size + 3 * meta.intermediate_size // tp) * ACTIVATION_BYTES
        moe = 0
    sampler = int(profile.sampler_rows * max_num_seqs * meta.vocab_size * FP32_BYTES)
    return max(forward, sampler) + moe


def non_torch_bytes(tp: int, profile: VllmProfile, peer_to_peer: bool) -> int:
    if tp == 1:
        return NON_TORCH_SINGLE_BYTES
    return profile.non_torch_tp_bytes if peer_to_peer else NON_TORCH_TP_NO_P2P_BYTES


def cuda_graph_bytes(weights_gpu: int, tp: int) -> int:
    extra = GRAPHS_TP_BYTES if tp > 1 else 0
    return min(GRAPHS_MAX_BYTES, GRAPHS_BASE_BYTES + int(GRAPHS_WEIGHT_FRACTION * weights_gpu) + extra)


def has_peer_to_peer(gpu_name: str) -> bool:
    """GeForce cards have P2P disabled by the driver; vLLM's custom all-reduce then stays off."""
    return "geforce" not in gpu_name.lower()


def engine_cost(
    meta: ModelMeta,
    tp: int,
    *,
    profile: VllmProfile,
    max_num_batched_tokens: int,
    max_num_seqs: int,
    peer_to_peer: bool = True,
    scale: float = 1.0,
) -> EngineCost:
    """Non-KV memory of one engine on each GPU of its tp group. `scale` multiplies the measured
    terms (activation and non-torch), as launches on this machine calibrated them."""
    weights = weights_per_gpu(meta, tp)
    graphs = cuda_graph_bytes(weights, tp)
    return EngineCost(
        weights=weights,
        activation=int(scale * activation_bytes(meta, tp, max_num_batched_tokens, max_num_seqs, profile)),
        non_torch=int(scale * non_torch_bytes(tp, profile, peer_to_peer)),
        cuda_graphs=graphs if profile.graphs_in_budget else 0,
        context=context_bytes(tp),
        graphs_outside=0 if profile.graphs_in_budget else graphs,
        context_in_budget=profile.context_in_budget,
    )


def budget_bytes(utilization: float, cuda_total: int) -> int:
    """What vLLM requests: ceil(total x util) bytes."""
    return math.ceil(cuda_total * utilization)


def kv_pool_tokens(pool_bytes: int, bytes_per_token: int) -> int:
    """The KV cache in tokens: whole blocks of the pool (vLLM's GPU KV cache size)."""
    if bytes_per_token <= 0 or pool_bytes <= 0:
        return 0
    return pool_bytes // (bytes_per_token * KV_BLOCK_TOKENS) * KV_BLOCK_TOKENS
