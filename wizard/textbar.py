"""Dividing a bar's cells between parts (memory per GPU), shared by the Textual bar and plain text."""

from __future__ import annotations

from collections.abc import Sequence


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


PLAIN_GLYPHS = {"weights": "#", "kv_cache": "=", "overhead": "+", "other_processes": "x", "free": "."}


def plain_bar(parts: Sequence[tuple[str, int]], width: int) -> str:
    """`###====+....` for terminals without colour (plain mode, logs)."""
    cells = split_widths([size for _, size in parts], width)
    return "".join(PLAIN_GLYPHS.get(name, "?") * n for (name, _), n in zip(parts, cells))
