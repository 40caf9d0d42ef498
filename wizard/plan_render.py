"""The readable `modelwiz plan` output: a memory map per GPU, then each model's settings and why.

Pure text; the TUI draws its own bars from the same `GpuBudget` numbers.
"""

from __future__ import annotations

from wizard.plan_types import ModelPlan
from wizard.planner import GpuBudget, Plan
from wizard.units import format_bytes

BAR_WIDTH = 48
# One character per kind of memory, in the order the map lists them.
_SEGMENTS = (
    ("driver", "driver_reserved_bytes", "#"),
    ("other processes", "other_processes_bytes", "x"),
    ("weights", "weights_bytes", "W"),
    ("KV cache", "kv_cache_bytes", "K"),
    ("overhead", "overhead_without_margin_bytes", "o"),
    ("margin", "margin_bytes", "m"),
    ("free", "free_bytes", "."),
)


def memory_bar(budget: GpuBudget, width: int = BAR_WIDTH) -> str:
    """`[##WWWWKKKoo....]`: each kind of memory in proportion to the device's total."""
    total = max(1, budget.total_bytes)
    sizes = [getattr(budget, attr) for _, attr, _ in _SEGMENTS]
    cells = [round(size * width / total) for size in sizes]
    # Keep every non-empty segment visible and the bar exactly `width` wide.
    for i, size in enumerate(sizes):
        if size > 0 and cells[i] == 0:
            cells[i] = 1
    while sum(cells) > width:
        cells[cells.index(max(cells))] -= 1
    while sum(cells) < width:
        cells[-1] += 1
    return "[" + "".join(ch * n for (_, _, ch), n in zip(_SEGMENTS, cells)) + "]"


def render_gpu(budget: GpuBudget) -> list[str]:
    head = f"GPU {budget.device}  {budget.name}  {format_bytes(budget.total_bytes)}"
    if not budget.usable:
        return [f"{head}  not usable: {budget.note}"]
    lines = [f"{head}  utilization {budget.utilization:.2f}", f"  {memory_bar(budget)}"]
    parts = [
        f"{label} {format_bytes(getattr(budget, attr))}"
        for label, attr, _ in _SEGMENTS
        if getattr(budget, attr) or label == "free"
    ]
    lines.append("  " + " · ".join(parts))
    for e in budget.engines:
        kept = " (deployed, kept)" if e.existing else ""
        lines.append(
            f"  - {e.model}: utilization {e.utilization:.2f}, weights {format_bytes(e.weights_bytes)}, "
            f"KV cache {format_bytes(e.kv_cache_bytes)}, overhead {format_bytes(e.overhead_without_margin_bytes)}, "
            f"margin {format_bytes(e.margin_bytes)}{kept}"
        )
    return lines


def render_model(plan: ModelPlan) -> list[str]:
    title = f"{plan.name}  ({plan.model})"
    if not plan.fits:
        lines = [f"{title}  DOES NOT FIT", f"  why: {plan.reason}"]
        lines += [f"  try: {s}" for s in plan.suggestions]
        return lines
    ig = plan.instance_group
    where = ", ".join(plan.devices)
    return [
        f"{title}  fits",
        f"  tensor_parallel_size {plan.tensor_parallel_size} · gpu_memory_utilization "
        f"{plan.gpu_memory_utilization:.2f} · max_model_len {plan.max_model_len} · dtype {plan.dtype or 'auto'}",
        f"  instance_group {ig.kind} count {ig.count} on GPU{'s' if len(plan.devices) > 1 else ''} {where}"
        f" · KV cache {plan.kv_cache_tokens} tokens ({format_bytes(plan.kv_cache_bytes_per_token)}/token)"
        f" · {plan.max_concurrency:g} full-length requests at once",
        f"  why: {plan.reason}",
    ]


def render_plan(plan: Plan) -> str:
    lines = ["Memory per GPU (# driver, x other processes, W weights, K KV cache, o overhead, m margin, . free)"]
    for budget in plan.gpus:
        lines += render_gpu(budget)
    lines.append("")
    lines.append("Models")
    for model in plan.models:
        lines += render_model(model)
    if plan.changes:
        lines.append("")
        lines.append("Changes to deployed models")
        lines += [f"  {c.name}: {c.setting} {c.old} -> {c.new}" for c in plan.changes]
    lines.append("")
    bad = [m.name for m in plan.models if not m.fits]
    lines.append("Everything fits." if not bad else f"Does not fit: {', '.join(bad)}.")
    return "\n".join(lines)
