"""One device's memory as a bar: weights, KV cache, overhead, other processes, free (the cells of
`wizard.textbar`, coloured by the theme; with NO_COLOR each part is drawn with its own letter,
`wizard.textbar.PART_GLYPHS`, so the bar still reads)."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from wizard.service import DEVICE_PARTS, DeviceMemory
from wizard.textbar import PART_GLYPHS, PART_LABELS, MemoryPart, split_widths
from wizard.units import format_bytes


def bar_glyph(part: MemoryPart, *, no_color: bool) -> str:
    """The cell drawn for `part`: a solid block told apart by colour, or without colour its letter."""
    if no_color:
        return PART_GLYPHS[part]
    return "░" if part == "free" else "█"


class MemoryBar(Widget):
    """Label line, then the bar. Colours come from the theme (component classes)."""

    COMPONENT_CLASSES = {f"memory-bar--{p}" for p in DEVICE_PARTS} | {"memory-bar--label"}
    DEFAULT_CSS = """
    MemoryBar {
        height: 2;
        & > .memory-bar--label { text-style: bold; }
        & > .memory-bar--weights { color: $primary; }
        & > .memory-bar--kv_cache { color: $success; }
        & > .memory-bar--overhead { color: $warning; }
        & > .memory-bar--other_processes { color: $error; }
        & > .memory-bar--free { color: $foreground 30%; }
    }
    """

    def __init__(self, memory: DeviceMemory, *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.memory = memory

    def update(self, memory: DeviceMemory) -> None:
        self.memory = memory
        self.refresh()

    def render(self) -> Text:
        m = self.memory
        used = m.total - m.free
        text = Text(no_wrap=True, overflow="ellipsis")
        text.append(m.label, style=self.get_component_rich_style("memory-bar--label"))
        text.append(f"  {format_bytes(used)} of {format_bytes(m.total)} planned", style="dim")
        text.append("\n")
        parts = m.parts()
        for (part, _), cells in zip(parts, split_widths([size for _, size in parts], self.size.width), strict=True):
            glyph = bar_glyph(part, no_color=self.app.no_color)
            text.append(glyph * cells, style=self.get_component_rich_style(f"memory-bar--{part}"))
        return text


class MemoryLegend(Widget):
    """The key to the bars' colours."""

    COMPONENT_CLASSES = MemoryBar.COMPONENT_CLASSES
    DEFAULT_CSS = MemoryBar.DEFAULT_CSS.replace("MemoryBar", "MemoryLegend").replace("height: 2;", "height: auto;")

    def render(self) -> Text:
        text = Text()
        for part in DEVICE_PARTS:
            if text:
                text.append("  ")
            glyph = PART_GLYPHS[part] if self.app.no_color else ("■" if part != "free" else "░")
            text.append(f"{glyph} ", style=self.get_component_rich_style(f"memory-bar--{part}"))
            text.append(PART_LABELS[part])
        return text
