"""Every text view of a plan, each written once:

- `render_plan`: the readable `modelwiz plan` output (a memory map per GPU, then each model's
  settings and why);
- `plan_summary`: one model's plan on one line (`modelwiz add`'s confirmation, `modelwiz status`);
- `model_card`: one model's verdict in the wizard, as toned pieces that the Textual plan screen
  colours and the plain wizard prints as they are;
- `device_lines`: a device's memory as the plain wizard shows it.

The memory bars themselves come from `wizard.textbar` (one algorithm, one legend).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Literal

from wizard.model_config import plan_devices
from wizard.plan_types import ModelPlan
from wizard.service import DEVICE_PARTS, DeviceMemory
from wizard.textbar import PART_LABELS, MemoryPart, plain_bar, plain_legend
from wizard.units import GiB, format_bytes

if TYPE_CHECKING:
    from wizard.planner import GpuBudget, Plan

BAR_WIDTH = 48
# Each kind of memory in a `GpuBudget`, in the order the map lists them.
_BUDGET_PARTS: tuple[tuple[MemoryPart, str], ...] = (
    ("driver", "driver_reserved_bytes"),
    ("other_processes", "other_processes_bytes"),
    ("weights", "weights_bytes"),
    ("kv_cache", "kv_cache_bytes"),
    ("overhead", "overhead_without_margin_bytes"),
    ("margin", "margin_bytes"),
    ("free", "free_bytes"),
)

Tone = Literal["good", "bad", "advice", "muted", "plain"]
Piece = tuple[str, Tone]


# ---------------------------------------------------------------------------------------------
# `modelwiz plan`


def _budget_parts(budget: GpuBudget) -> list[tuple[MemoryPart, int]]:
    return [(part, int(getattr(budget, attr))) for part, attr in _BUDGET_PARTS]


def memory_bar(budget: GpuBudget, width: int = BAR_WIDTH) -> str:
    """`[##WWWWKKKoo....]`: each kind of memory in proportion to the device's total."""
    return "[" + plain_bar(_budget_parts(budget), width) + "]"


def render_gpu(budget: GpuBudget) -> list[str]:
    head = f"GPU {budget.device}  {budget.name}  {format_bytes(budget.total_bytes)}"
    if not budget.usable:
        return [f"{head}  not usable: {budget.note}"]
    lines = [f"{head}  utilization {budget.utilization:.2f}", f"  {memory_bar(budget)}"]
    parts = [
        f"{PART_LABELS[part]} {format_bytes(size)}" for part, size in _budget_parts(budget) if size or part == "free"
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
    lines = [f"Memory per GPU ({plain_legend([part for part, _ in _BUDGET_PARTS])})"]
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


# ---------------------------------------------------------------------------------------------
# One line per model


def plan_summary(plan: ModelPlan) -> str:
    """`TP 1, util 0.45, max_model_len 4096, KIND_GPU on 0` (one line for lists)."""
    where = ", ".join(plan_devices(plan)) or "?"
    text = (
        f"TP {plan.tensor_parallel_size}, util {plan.gpu_memory_utilization:.2f}, "
        f"max_model_len {plan.max_model_len}, {plan.instance_group.kind} on {where}"
    )
    if plan.dtype:
        text += f", {plan.dtype}"
    return text


# ---------------------------------------------------------------------------------------------
# The wizard's plan step


def copies(plan: ModelPlan) -> int:
    """How many engines serve the model: KIND_GPU puts `count` on each listed GPU."""
    ig = plan.instance_group
    return ig.count * max(1, len(ig.gpus)) if ig.kind == "KIND_GPU" else ig.count


def copies_text(n: int) -> str:
    return "1 copy" if n == 1 else f"{n} copies"


def model_card(plan: ModelPlan, *, shortened_from: int | None = None) -> list[Piece]:
    """One model's plan in plain words, each with the vLLM/Triton setting it becomes beside it
    (`2 copies (instance_group KIND_GPU count 1)`), or why it does not fit. `shortened_from`: the
    context this model had before the last change, when the change shortened it."""
    if not plan.fits:
        pieces: list[Piece] = [("✖ does not fit: ", "bad"), (plan.reason or "no placement found", "plain")]
        pieces += [(f"\n  → {s}", "advice") for s in plan.suggestions]
        return pieces
    ig = plan.instance_group
    where = ", ".join(plan.devices) or ", ".join(str(g) for g in ig.gpus)
    tp = plan.tensor_parallel_size
    split = f"each copy split over {tp} GPUs" if tp > 1 else "each copy on one GPU"
    n = copies(plan)
    pieces = [
        ("✔ fits  ", "good"),
        (f"GPU {where} · {split} ", "plain"),
        (f"(tensor_parallel_size {tp})", "muted"),
        (f" · {copies_text(n)} ", "plain"),
        (f"(instance_group {ig.kind} count {ig.count})", "muted"),
        (f"\ncontext {plan.max_model_len:,} tokens ", "plain"),
        ("(max_model_len)", "muted"),
        (f" · memory share {plan.gpu_memory_utilization:.2f} ", "plain"),
        ("(gpu_memory_utilization)", "muted"),
        (
            f"\nweights {format_bytes(plan.weights_bytes)} · KV cache {plan.kv_cache_tokens:,} tokens · "
            f"≈{plan.max_concurrency:.1f} full-length requests at once",
            "muted",
        ),
    ]
    if plan.kv_cache_dtype:
        pieces.append((f" · KV {plan.kv_cache_dtype}", "muted"))
    if shortened_from is not None and shortened_from > plan.max_model_len:
        pieces.append(
            (
                f"\n! context shortened from {shortened_from:,} to {plan.max_model_len:,} tokens so that"
                " the requests asked for fit; type a context length to choose",
                "advice",
            )
        )
    return pieces


# One-key actions the plan screen offers for the planner's suggestions.
SHORTER_CONTEXT = re.compile(r"--max-model-len (\d+)")
KEEP_FREE_BYTES = 20 * GiB


def suggested_context(plan: ModelPlan) -> int | None:
    """The context length the planner suggests for a model that does not fit (its `--max-model-len
    N fits` suggestion, as `modelwiz plan` prints it), or None."""
    for suggestion in plan.suggestions:
        found = SHORTER_CONTEXT.search(suggestion)
        if found:
            return int(found.group(1))
    return None


def card_text(plan: ModelPlan) -> str:
    """`model_card` as plain text."""
    return "".join(text for text, _ in model_card(plan))


def device_lines(device: DeviceMemory, width: int = BAR_WIDTH) -> list[str]:
    """`GPU 0 · H100: 40.0 GiB of 79.1 GiB planned` and its bar."""
    return [
        f"{device.label}: {format_bytes(device.total - device.free)} of {format_bytes(device.total)} planned",
        f"  [{plain_bar(device.parts(), width)}]",
    ]


def device_legend() -> str:
    return plain_legend(DEVICE_PARTS)
