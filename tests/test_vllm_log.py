"""Reading what vLLM measured from its startup log: real lines from public logs, V0 and V1."""

from __future__ import annotations

import pytest

from wizard.units import GiB, MiB
from wizard.vllm_log import VllmLoadReport, parse_vllm_log


def gib(x: float) -> int:
    return int(x * GiB)


# V1, vLLM 0.19.0, Llama-3.1-8B-Instruct at tp2 on H100 (two workers print their own lines):
# https://github.com/llm-d-incubation/llm-d-planner/blob/d3121e059da88662db39a926a3ead964be97359b/accuracy/results/v0.19.0/logs/meta-llama-llama-3-1-8b---h100-80gb--tp2pp1dp1--8192.log
V1_019_TP2 = """\
(APIServer pid=1) INFO 04-22 01:35:30 [entrypoints/utils.py:299]  ▄▄ ▄█ █     █     █ ▀▄▀ █  version 0.19.0
(Worker_TP0 pid=444) INFO 04-22 01:36:06 [v1/worker/gpu_model_runner.py:4820] Model loading took 7.51 GiB memory and 10.562171 seconds
(Worker_TP1 pid=445) DEBUG 04-22 01:36:26 [v1/worker/gpu_worker.py:435] Memory profiling takes 19.45 seconds. Total non KV cache memory: 11.47GiB; torch peak memory increase: 1.89GiB; non-torch forward increase memory: 2.07GiB; weights memory: 7.51GiB.
(Worker_TP0 pid=444) DEBUG 04-22 01:36:26 [v1/worker/gpu_worker.py:435] Memory profiling takes 19.38 seconds. Total non KV cache memory: 11.47GiB; torch peak memory increase: 1.89GiB; non-torch forward increase memory: 2.07GiB; weights memory: 7.51GiB.
(Worker_TP0 pid=444) INFO 04-22 01:36:26 [v1/worker/gpu_worker.py:436] Available KV cache memory: 63.76 GiB
(EngineCore pid=245) INFO 04-22 01:36:26 [v1/core/kv_cache_utils.py:1319] GPU KV cache size: 1,044,688 tokens
(EngineCore pid=245) INFO 04-22 01:36:26 [v1/core/kv_cache_utils.py:1324] Maximum concurrency for 8,192 tokens per request: 127.53x
(Worker_TP0 pid=444) INFO 04-22 01:36:30 [v1/worker/gpu_model_runner.py:6046] Graph capturing finished in 4 secs, took 0.76 GiB
(Worker_TP0 pid=444) DEBUG 04-22 01:36:30 [v1/worker/gpu_worker.py:661] Free memory on device (77.66/79.19 GiB) on startup. Desired GPU memory utilization is (0.95, 75.23 GiB). Actual usage is 7.51 GiB for weight, 1.89 GiB for peak activation, 2.07 GiB for non-torch memory, and 0.76 GiB for CUDAGraph memory.
"""


def test_v1_019_startup_with_two_workers():
    report = parse_vllm_log(V1_019_TP2)
    assert report == VllmLoadReport(
        engine="V1",
        weights_bytes=gib(7.51),
        kv_cache_tokens=1_044_688,
        kv_cache_bytes=gib(63.76),
        max_concurrency=127.53,
        concurrency_tokens=8192,
        activation_bytes=gib(1.89),
        non_torch_bytes=gib(2.07),
        non_kv_bytes=gib(11.47),
        cuda_graph_bytes=gib(0.76),
        cuda_total_bytes=gib(79.19),
        gpu_memory_utilization=0.95,
    )


def test_v1_08_lines():
    # https://github.com/vllm-project/vllm/pull/17122 (V1, 0.8.5 development, L40S)
    report = parse_vllm_log(
        "INFO 04-24 16:33:00 [gpu_model_runner.py:1316] Model loading took 14.9889 GiB and 3.652170 seconds\n"
        "INFO 04-24 16:33:13 [kv_cache_utils.py:634] GPU KV cache size: 158,656 tokens\n"
        "INFO 04-24 16:33:13 [kv_cache_utils.py:637] Maximum concurrency for 32,768 tokens per request: 4.84x\n"
    )
    assert report.engine == "V1" and report.weights_bytes == gib(14.9889)
    assert (report.kv_cache_tokens, report.max_concurrency, report.concurrency_tokens) == (158_656, 4.84, 32_768)
    # https://github.com/vllm-project/vllm/issues/15136 (0.8.0 still wrote "GB")
    line = "(VllmWorker rank=0 pid=182346) INFO 03-19 14:20:20 [gpu_model_runner.py:1140] Model loading took 3.9972 GB and 2.416524 seconds"
    assert parse_vllm_log(line).weights_bytes == gib(3.9972)
    # https://github.com/vllm-project/vllm/issues/21348
    report = parse_vllm_log("Available KV cache memory: 8.11 GiB\nGPU KV cache size: 178,880 tokens")
    assert (report.kv_cache_bytes, report.kv_cache_tokens) == (gib(8.11), 178_880)


def test_v1_early_block_count_and_the_one_line_format():
    # https://github.com/vllm-project/vllm/pull/13596: V1 printed blocks before it printed tokens.
    before = parse_vllm_log(
        "INFO 02-20 00:01:02 kv_cache_utils.py:522] # GPU blocks: 127626\n"
        "INFO 02-20 00:01:02 kv_cache_utils.py:525] Maximum concurrency for 2048 tokens per request: 997.08x\n"
    )
    assert (before.kv_cache_blocks, before.kv_cache_tokens, before.max_concurrency) == (127_626, 2_042_016, 997.08)
    after = parse_vllm_log("INFO 02-19 23:56:55 kv_cache_utils.py:524] GPU KV cache size: 2,042,016 tokens")
    assert after.kv_cache_tokens == 2_042_016
    # Newer releases print both on one line (the format string quoted in
    # https://github.com/vllm-project/vllm/issues/54662: "GPU KV cache size: %s tokens, Maximum
    # concurrency for %s tokens per request: %.2fx"), here with 0.19's numbers.
    one = parse_vllm_log(
        "GPU KV cache size: 1,044,688 tokens, Maximum concurrency for 8,192 tokens per request: 127.53x"
    )
    assert (one.kv_cache_tokens, one.concurrency_tokens, one.max_concurrency) == (1_044_688, 8192, 127.53)
    # "Free memory on device cuda:0 (...)", as later releases word it (vllm/v1/worker/utils.py).
    budget = parse_vllm_log(
        "Free memory on device cuda:0 (2.6/121.63 GiB) on startup. Desired GPU memory utilization is (0.08, 9.73 GiB)."
    )
    assert (budget.cuda_total_bytes, budget.gpu_memory_utilization) == (gib(121.63), 0.08)


def test_v0_064_profile_line_and_blocks():
    # https://github.com/vllm-project/vllm/issues/10517 (V0, RTX 3090, Llama-3.1-8B at 29k tokens)
    report = parse_vllm_log(
        "Loading model weights took 14.9888 GB\n"
        "Memory profiling results: total_gpu_memory=23.58GiB initial_memory_usage=15.34GiB "
        "peak_torch_memory=17.98GiB memory_usage_post_profile=15.35GiB non_torch_memory=0.35GiB "
        "kv_cache_size=2.89GiB gpu_memory_utilization=0.90\n"
        "# GPU blocks: 1478, # CPU blocks: 2048\n"
        "Maximum concurrency for 29000 tokens per request: 0.82x\n"
    )
    assert report.engine == "V0"
    assert report.weights_bytes == gib(14.9888) and report.kv_cache_bytes == gib(2.89)
    assert (report.kv_cache_blocks, report.kv_cache_tokens) == (1478, 23_648)
    assert report.activation_bytes == gib(17.98) - gib(14.9888)
    assert report.non_torch_bytes == gib(0.35) and report.cuda_total_bytes == gib(23.58)
    assert report.gpu_memory_utilization == 0.90 and report.max_concurrency == 0.82


def test_v0_07_profile_lines():
    # https://github.com/vllm-project/vllm/issues/13882 (V0, RTX 4060: no room for the KV cache)
    report = parse_vllm_log(
        "INFO 02-26 09:54:02 model_runner.py:1115] Loading model weights took 5.2032 GB\n"
        "INFO 02-26 09:54:05 worker.py:267] Memory profiling takes 3.25 seconds\n"
        "INFO 02-26 09:54:05 worker.py:267] the current vLLM instance can use total_gpu_memory (8.00GiB) "
        "x gpu_memory_utilization (0.70) = 5.60GiB\n"
        "INFO 02-26 09:54:05 worker.py:267] model weights take 5.20GiB; non_torch_memory takes 0.03GiB; "
        "PyTorch activation peak memory takes 1.42GiB; the rest of the memory reserved for KV Cache is -1.05GiB.\n"
        "INFO 02-26 09:54:05 executor_base.py:111] # cuda blocks: 0, # CPU blocks: 4681\n"
        "INFO 02-26 09:54:05 executor_base.py:116] Maximum concurrency for 4096 tokens per request: 0.00x\n"
    )
    assert report.weights_bytes == gib(5.2032)  # the "took" line comes first
    assert (report.kv_cache_bytes, report.kv_cache_tokens, report.max_concurrency) == (0, 0, 0.0)
    assert report.activation_bytes == gib(1.42) and report.non_torch_bytes == gib(0.03)
    assert (report.cuda_total_bytes, report.gpu_memory_utilization) == (gib(8.00), 0.70)
    # https://github.com/vllm-project/vllm/pull/12126: "# CUDA blocks" in capitals
    assert parse_vllm_log("# CUDA blocks: 6001, # CPU blocks: 1638").kv_cache_tokens == 6001 * 16


def test_v0_065_profile_table_and_older_releases():
    # https://github.com/vllm-project/vllm/pull/10511 (0.6.5 development, H100)
    report = parse_vllm_log(
        "INFO 12-13 19:54:18 worker.py:243] Memory profiling results:\n"
        "INFO 12-13 19:54:18 worker.py:243] duration     0.75 seconds\n"
        "INFO 12-13 19:54:18 worker.py:243] total_gpu_memory     79.22GiB\n"
        "INFO 12-13 19:54:18 worker.py:243] gpu_memory_utilization       0.90\n"
        "INFO 12-13 19:54:18 worker.py:243] the current vLLM instance can use    71.29GiB\n"
        "INFO 12-13 19:54:18 worker.py:243] model weights take   14.96GiB\n"
        "INFO 12-13 19:54:18 worker.py:243] non_torch_memory     1.79GiB\n"
        "INFO 12-13 19:54:18 worker.py:243] PyTorch activation peak memory       1.26GiB\n"
        "INFO 12-13 19:54:18 worker.py:243] available_kv_cache_memory    53.29GiB\n"
    )
    assert report.weights_bytes == gib(14.96) and report.kv_cache_bytes == gib(53.29)
    assert (report.activation_bytes, report.non_torch_bytes) == (gib(1.26), gib(1.79))
    assert (report.cuda_total_bytes, report.gpu_memory_utilization) == (gib(79.22), 0.90)
    # https://github.com/vllm-project/vllm/pull/4650 (0.5.0.post1) and PR #3120 (MB)
    old = parse_vllm_log(
        "INFO 06-27 21:54:03 model_runner.py:225] Loading model weights took 29.3010 GB\n"
        "INFO 06-27 21:54:05 gpu_executor.py:83] # GPU blocks: 5549, # CPU blocks: 606\n"
    )
    assert (old.engine, old.weights_bytes, old.kv_cache_tokens) == ("V0", gib(29.3010), 5549 * 16)
    tiny = parse_vllm_log(">> INFO 02-29 19:21:45 model_runner.py:90] Loading model weights took 244.61 MB")
    assert tiny.weights_bytes == int(244.61 * MiB)


def test_nothing_to_read():
    report = parse_vllm_log("I1129 10:00:00.000 server.cc:1] Started GRPCInferenceService at 0.0.0.0:8001\n")
    assert report.empty and report == VllmLoadReport()
    assert parse_vllm_log([]).empty


@pytest.mark.parametrize("block_size", [16, 32])
def test_blocks_count_in_the_configured_block_size(block_size):
    assert parse_vllm_log(["# GPU blocks: 10"], block_size=block_size).kv_cache_tokens == 10 * block_size
