"""The one memory-bar algorithm and legend: how a device's memory is divided between its parts,
as cells of a bar. Used by `modelwiz plan` (wizard.plan_render), the plain wizard and the Textual
bar widget (screens/widgets/memory_bar.py), which colours the same cells."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

MemoryPart = Literal["driver", "other_processes", "weights", "kv_cache", "overhead", "margin", "free"]

PART_LABELS: dict[MemoryPart, str] = {
    "driver": "driver",
    "other_processes": "other processes",
    "weights": "weights",
    "kv_cache": "KV cache",
    "overhead": "overhead",
    "margin": "margin",
    "free": "free",
}
# For terminals without colour: one letter per part, so the bar reads without its legend.
PART_GLYPHS: dict[MemoryPart, str] = {
    "driver": "#",
    "other_processes": "x",
    "weights": "W",
    "kv_cache": "K",
    "overhead": "o",
    "margin": "m",
    "free": ".",
}


def split_widths(sizes: Sequence[int], width: int) -> list[int]:
    """Cells per part so they add up to `width` exactly (largest remainder); a non-zero part
    gets at least one cell when there is room."""
    total = sum(sizes)
    if width <= 0 or total <= 0:
        return [0] * len(sizes)
    exact = [s * width / total for s in sizes]
    cells = [int(e) for e in exact]
    for i, s in enumerate(sizes):
        if s > 0 and cells[i] == 0 and sum(cells) < width:
            cells[i] = 1
    order = sorted(range(len(sizes)), key=lambda i: exact[i] - int(exact[i]), reverse=True)
    i = 0
    while sum(cells) < width:
        cells[order[i % len(order)]] += 1
        i += 1
    while sum(cells) > width:
        biggest = max(range(len(cells)), key=lambda j: cells[j])
        cells[biggest] -= 1
    return cells


def plain_bar(parts: Sequence[tuple[MemoryPart, int]], width: int) -> str:
    """`WWWWKKKKo....` for terminals without colour (plain mode, `modelwiz plan`, logs)."""
    cells = split_widths([size for _, size in parts], width)
    return "".join(PART_GLYPHS[name] * n for (name, _), n in zip(parts, cells, strict=True))


def plain_legend(parts: Sequence[MemoryPart]) -> str:
    """`W weights, K KV cache, o overhead, x other processes, . free`."""
    return ", ".join(f"{PART_GLYPHS[p]} {PART_LABELS[p]}" for p in parts)
