"""One device's memory as a bar: weights, KV cache, overhead, other processes, free (the cells of
`wizard.textbar`, coloured by the theme)."""

from __future__ import annotations

from rich.text import Text
from textual.widget import Widget

from wizard.service import DEVICE_PARTS, DeviceMemory
from wizard.textbar import PART_LABELS, split_widths
from wizard.units import format_bytes


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
            glyph = "░" if part == "free" else "█"
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
            text.append("■ " if part != "free" else "░ ", style=self.get_component_rich_style(f"memory-bar--{part}"))
            text.append(PART_LABELS[part])
        return text
