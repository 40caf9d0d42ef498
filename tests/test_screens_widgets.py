"""Widgets on small and colourless terminals: the concurrency field shows its whole value, two plan
cards fit 80x24, and with NO_COLOR the memory bar draws each part with its own letter."""

from __future__ import annotations

from textual.widgets import Input

from screens.app import build_app
from screens.widgets.memory_bar import MemoryBar, MemoryLegend
from tests.fixtures_screens import pick, to_models, to_plan
from wizard.textbar import PART_GLYPHS

SMALL = (80, 24)


def shown(widget) -> str:
    return "\n".join(strip.text for strip in widget.render_lines(widget.region.reset_offset))


async def _plan_with_two(pilot):
    await to_models(pilot)
    await pick(pilot, "qwen2.5-7b")
    await pick(pilot, "mistral-7b")
    await to_plan(pilot)


async def test_concurrency_field_shows_every_digit(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SMALL) as pilot:
        await _plan_with_two(pilot)
        field = app.screen.query_one("#conc-0", Input)
        field.focus()
        field.value = ""
        await pilot.press("1", "6")
        await pilot.pause()
        assert shown(field).strip() == "16"


async def test_two_plan_cards_fit_80x24(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SMALL) as pilot:
        await _plan_with_two(pilot)
        app.screen.set_focus(None)
        body = app.screen.query_one("#body")
        for card_id in ("#card-0", "#card-1"):
            card = app.screen.query_one(card_id)
            body.scroll_to_widget(card, animate=False)
            await pilot.pause()
            assert body.region.contains_region(card.region), card_id  # reachable, whole
        assert app.screen.query_one("#card-0 .settings").region.height == 1  # compact inputs, no borders


async def test_no_color_memory_bar_uses_letters(fake_backend, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")
    app = build_app(fake_backend)
    async with app.run_test(size=SMALL) as pilot:
        await _plan_with_two(pilot)
        bar = app.screen.query(MemoryBar).first()
        cells = shown(bar).splitlines()[1]
        assert PART_GLYPHS["weights"] in cells and PART_GLYPHS["free"] in cells
        assert "█" not in cells
        legend = shown(app.screen.query_one(MemoryLegend))
        assert f"{PART_GLYPHS['kv_cache']} KV cache" in legend
