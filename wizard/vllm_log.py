"""What vLLM says it measured when a model loads: read from its log lines (V0 and V1 formats).

The lines it prints while starting an engine (each may carry any prefix: vLLM's own
`INFO 04-22 01:07:43 [gpu_worker.py:436]`, a worker tag, Triton's log prefix):

* weights: `Loading model weights took 14.9888 GB` (V0; "GB" and "MB" there are GiB and MiB),
  `Model loading took 14.9889 GiB and 3.65 seconds` (V1), `... took 56.88 GiB memory and ...`;
* the KV cache: `GPU KV cache size: 158,656 tokens` (V1), `# GPU blocks: 1478, # CPU blocks: 2048`
  (V0, and V1 before PR #13596; times the block size), `# cuda blocks: 0, ...`;
  `Available KV cache memory: 43.61 GiB` (V1), `kv_cache_size=3.81GiB` (V0 0.6.4), `the rest of
  the memory reserved for KV Cache is 1.57GiB` (V0 0.7), `available_kv_cache_memory 53.29GiB`;
* concurrency: `Maximum concurrency for 32,768 tokens per request: 4.84x` (on its own line, or after
  the token count on the same line in newer releases);
* the memory profile: `Memory profiling takes 25.66 seconds. Total non KV cache memory: 59.82GiB;
  torch peak memory increase: 2.68GiB; non-torch forward increase memory: 0.27GiB; weights memory:
  56.88GiB.` (V1), `model weights take 5.20GiB; non_torch_memory takes 0.03GiB; PyTorch
  activation peak memory takes 1.42GiB; ...` (V0 0.7), `Memory profiling results:
  total_gpu_memory=23.58GiB ... peak_torch_memory=17.06GiB ... non_torch_memory=0.35GiB ...`
  (V0 0.6.4); the budget: `total_gpu_memory (79.22GiB) x gpu_memory_utilization (0.90)` (V0),
  `Free memory on device (78.68/79.19 GiB) on startup. Desired GPU memory utilization is (0.95,
  75.23 GiB)` (V1);
* CUDA graphs: `Graph capturing finished in 12 secs, took 1.57 GiB`.

With tensor parallelism every worker prints its own lines; the engine's KV cache is the smallest
of them, so the smallest pool wins, while sizes per GPU keep the first value seen.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, fields
from typing import Literal

from wizard.units import GiB, KiB, MiB, TiB

DEFAULT_BLOCK_SIZE = 16  # vLLM's KV block on CUDA, for logs that count blocks

_UNITS = {"t": TiB, "g": GiB, "m": MiB, "k": KiB}  # vLLM's "GB"/"MB" are binary
_SIZE = r"(-?\d+(?:\.\d+)?)\s*([TGMK])i?B"
_INT = r"(\d[\d,]*)"


def _bytes(number: str, unit: str) -> int:
    return int(float(number) * _UNITS[unit.lower()])


def _int(text: str) -> int:
    return int(text.replace(",", ""))


@dataclass(frozen=True)
class VllmLoadReport:
    """What one engine's startup log says (per GPU of its tp group; None when not printed)."""

    engine: Literal["V0", "V1"] | None = None  # from the wording of the weights/KV lines
    weights_bytes: int | None = None
    kv_cache_tokens: int | None = None
    kv_cache_blocks: int | None = None
    kv_cache_bytes: int | None = None  # the KV pool vLLM sized
    max_concurrency: float | None = None
    concurrency_tokens: int | None = None  # the request length max_concurrency is for
    activation_bytes: int | None = None  # torch peak increase while profiling
    non_torch_bytes: int | None = None
    non_kv_bytes: int | None = None  # everything vLLM took out of the budget before the KV cache
    cuda_graph_bytes: int | None = None
    cuda_total_bytes: int | None = None  # what gpu_memory_utilization is a fraction of
    gpu_memory_utilization: float | None = None

    @property
    def empty(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


# (name, pattern, engine the wording belongs to)
_WEIGHTS = (
    (re.compile(r"Loading model weights took " + _SIZE), "V0"),
    (re.compile(r"Model loading took " + _SIZE), "V1"),
)
_KV_TOKENS = re.compile(r"GPU KV cache size: " + _INT + r" tokens")
_BLOCKS = re.compile(r"#?\s*(?:GPU|CUDA|cuda) blocks: " + _INT)
_CONCURRENCY = re.compile(r"Maximum concurrency for " + _INT + r" tokens per request: (\d+(?:\.\d+)?)x")
_KV_BYTES = (
    re.compile(r"Available KV cache memory: " + _SIZE),
    re.compile(r"kv_cache_size=" + _SIZE),
    re.compile(r"the rest of the memory reserved for KV Cache is " + _SIZE),
    re.compile(r"available_kv_cache_memory\s+" + _SIZE),
)
_V1_PROFILE = re.compile(
    r"Total non KV cache memory: "
    + _SIZE
    + r"; torch peak memory increase: "
    + _SIZE
    + r"; non-torch forward increase memory: "
    + _SIZE
    + r"; weights memory: "
    + _SIZE
)
_V0_PROFILE = re.compile(
    r"model weights take "
    + _SIZE
    + r"; non_torch_memory takes "
    + _SIZE
    + r"; PyTorch activation peak memory takes "
    + _SIZE
)
_V0_TABLE = (  # the 0.6.5 one-value-per-line table
    ("activation_bytes", re.compile(r"PyTorch activation peak memory\s+" + _SIZE)),
    ("non_torch_bytes", re.compile(r"non_torch_memory\s+" + _SIZE)),
    ("weights_bytes", re.compile(r"model weights take\s+" + _SIZE + r"\s*$")),
    ("cuda_total_bytes", re.compile(r"total_gpu_memory\s+" + _SIZE)),
)
_V064_PROFILE = re.compile(
    r"total_gpu_memory="
    + _SIZE
    + r" initial_memory_usage="
    + _SIZE
    + r" peak_torch_memory="
    + _SIZE
    + r" memory_usage_post_profile="
    + _SIZE
    + r" non_torch_memory="
    + _SIZE
)
_V0_BUDGET = re.compile(r"total_gpu_memory \(" + _SIZE + r"\) x gpu_memory_utilization \((\d+(?:\.\d+)?)\)")
_V1_BUDGET = re.compile(
    r"Free memory on device(?: \S+)? \(-?\d+(?:\.\d+)?/"
    + _SIZE
    + r"\) on startup\. Desired GPU memory utilization is \((\d+(?:\.\d+)?),"
)
_UTILIZATION = re.compile(r"gpu_memory_utilization(?:=|\s+)(\d+(?:\.\d+)?)\s*$")
_GRAPHS = re.compile(r"Graph capturing finished in \d+(?:\.\d+)? secs?, took " + _SIZE)


class _Collector:
    def __init__(self, block_size: int) -> None:
        self.block_size = block_size
        self.values: dict[str, object] = {}
        self.peak_torch = 0  # V0 0.6.4 prints the torch peak with the weights in it

    def first(self, name: str, value: object) -> None:
        self.values.setdefault(name, value)

    def smallest(self, name: str, value: int | float) -> None:
        old = self.values.get(name)
        if old is None or value < old:  # type: ignore[operator]
            self.values[name] = value

    def line(self, text: str) -> None:
        for pattern, engine in _WEIGHTS:
            if match := pattern.search(text):
                self.first("weights_bytes", _bytes(*match.groups()))
                self.first("engine", engine)
        if match := _KV_TOKENS.search(text):
            self.smallest("kv_cache_tokens", _int(match.group(1)))
            self.first("engine", "V1")
        if match := _BLOCKS.search(text):
            blocks = _int(match.group(1))
            self.smallest("kv_cache_blocks", blocks)
            self.smallest("kv_cache_tokens", blocks * self.block_size)
        if match := _CONCURRENCY.search(text):
            self.first("concurrency_tokens", _int(match.group(1)))
            self.smallest("max_concurrency", float(match.group(2)))
        for pattern in _KV_BYTES:
            if match := pattern.search(text):
                self.smallest("kv_cache_bytes", max(0, _bytes(*match.groups())))
        if match := _V1_PROFILE.search(text):
            g = match.groups()
            self.first("non_kv_bytes", _bytes(g[0], g[1]))
            self.first("activation_bytes", _bytes(g[2], g[3]))
            self.first("non_torch_bytes", _bytes(g[4], g[5]))
            self.first("weights_bytes", _bytes(g[6], g[7]))
        if match := _V0_PROFILE.search(text):
            g = match.groups()
            self.first("weights_bytes", _bytes(g[0], g[1]))
            self.first("non_torch_bytes", _bytes(g[2], g[3]))
            self.first("activation_bytes", _bytes(g[4], g[5]))
        for name, pattern in _V0_TABLE:
            if match := pattern.search(text):
                self.first(name, _bytes(*match.groups()))
        if match := _V064_PROFILE.search(text):
            g = match.groups()
            self.first("cuda_total_bytes", _bytes(g[0], g[1]))
            self.peak_torch = self.peak_torch or _bytes(g[4], g[5])  # weights + activation
            self.first("non_torch_bytes", _bytes(g[8], g[9]))
        if match := _V0_BUDGET.search(text):
            self.first("cuda_total_bytes", _bytes(match.group(1), match.group(2)))
            self.first("gpu_memory_utilization", float(match.group(3)))
        if match := _V1_BUDGET.search(text):
            self.first("cuda_total_bytes", _bytes(match.group(1), match.group(2)))
            self.first("gpu_memory_utilization", float(match.group(3)))
        if match := _UTILIZATION.search(text):
            self.first("gpu_memory_utilization", float(match.group(1)))
        if match := _GRAPHS.search(text):
            self.first("cuda_graph_bytes", _bytes(*match.groups()))


def parse_vllm_log(lines: str | Iterable[str], *, block_size: int = DEFAULT_BLOCK_SIZE) -> VllmLoadReport:
    """The measurements in vLLM's startup log text (or lines); fields not printed stay None."""
    collector = _Collector(block_size)
    for line in lines.splitlines() if isinstance(lines, str) else lines:
        collector.line(line)
    weights = collector.values.get("weights_bytes")
    if collector.peak_torch and isinstance(weights, int):
        collector.first("activation_bytes", max(0, collector.peak_torch - weights))
    return VllmLoadReport(**collector.values)  # type: ignore[arg-type]


# Triton logs each model load it starts (src/model_lifecycle.cc: `LOG_INFO << "loading: " <<
# model_name << ":" << version`, quoted in newer releases: `"loading: tiny:1"`).
_TRITON_LOADING = re.compile(r"model_lifecycle\.cc:\d+\]\s*\"?loading: ([^\s:\"']+):\d+")


class ModelLoadLog:
    """Triton's log, line by line, split by model: what follows Triton's `loading: NAME:1` line
    belongs to NAME until the next model's load starts (modelwiz loads one model at a time).
    Thread-safe to feed from a log follower while another thread reads the reports."""

    def __init__(self, *, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        self.block_size = block_size
        self._lines: dict[str, list[str]] = {}
        self._current: str | None = None
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        with self._lock:
            if match := _TRITON_LOADING.search(text):
                self._current = match.group(1)
                self._lines[self._current] = []  # a model loaded again: only its last load counts
            elif self._current is not None:
                self._lines[self._current].append(text)

    def reports(self) -> dict[str, VllmLoadReport]:
        """Each model's measurements, for models whose load printed any."""
        with self._lock:
            sections = {name: list(lines) for name, lines in self._lines.items()}
        found = {name: parse_vllm_log(lines, block_size=self.block_size) for name, lines in sections.items()}
        return {name: report for name, report in found.items() if not report.empty}
