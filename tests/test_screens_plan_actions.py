"""The plan explains itself: settings in plain words with the vLLM/Triton name beside them, the
planner's suggestions as one-key actions (`u` use the context that fits, `k` keep 20 GiB per GPU
for later / fill it again), and a context the planner shortened is said to be shortened."""

from __future__ import annotations

from textual.widgets import Button, Input

from screens.app import build_app
from tests.fixtures_screens import SIZE, pick, plan_ready, screen_name, text_of, to_models, to_plan, wait_for
from wizard.plan_render import KEEP_FREE_BYTES


async def _plan_qwen(pilot):
    await to_models(pilot)
    await pick(pilot, "qwen2.5-7b")
    await to_plan(pilot)


async def _set(pilot, selector: str, value: str) -> None:
    pilot.app.screen.query_one(selector, Input).value = value
    await pilot.pause(0.4)  # the replan delay
    await wait_for(pilot, lambda: plan_ready(pilot.app), groups=["plan"])


def _model(app):
    return app.screen.plan.models[0]


async def test_settings_are_in_plain_words_with_the_setting_beside(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _plan_qwen(pilot)
        card = text_of(app, "#card-0 .verdict")
        assert "1 copy (instance_group KIND_MODEL count 1)" in card
        assert "each copy on one GPU (tensor_parallel_size 1)" in card
        assert "memory share 0.90 (gpu_memory_utilization)" in card
        assert "context 32,768 tokens (max_model_len)" in card


async def test_a_shortened_context_is_said(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _plan_qwen(pilot)
        assert "shortened" not in text_of(app, "#card-0 .verdict")
        await _set(pilot, "#conc-0", "40")
        assert _model(app).max_model_len == 16384
        assert "context shortened from 32,768 to 16,384 tokens" in text_of(app, "#card-0 .verdict")
        await _set(pilot, "#conc-0", "1")
        assert "shortened" not in text_of(app, "#card-0 .verdict")


async def test_u_uses_the_context_the_planner_says_fits(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _plan_qwen(pilot)
        assert not app.screen.query_one("#use-len", Button).display
        await _set(pilot, "#len-0", "32768")
        await _set(pilot, "#conc-0", "99")
        assert not _model(app).fits
        use = app.screen.query_one("#use-len", Button)
        assert use.display and "use 8,192 tokens" in str(use.label)
        app.screen.set_focus(None)  # the key is the screen's, not an Input's
        await pilot.press("u")
        await pilot.pause(0.4)
        await wait_for(pilot, lambda: plan_ready(app), groups=["plan"])
        assert app.screen.query_one("#len-0", Input).value == "8192"
        assert _model(app).fits and _model(app).max_model_len == 8192
        assert not app.screen.query_one("#continue", Button).disabled


async def test_k_keeps_room_for_later_and_the_choice_reaches_the_state(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _plan_qwen(pilot)
        await _set(pilot, "#conc-0", "10")
        assert _model(app).tensor_parallel_size == 1  # 15 GiB weights + 40 GiB KV on one H100
        app.screen.set_focus(None)
        await pilot.press("k")
        await wait_for(pilot, lambda: plan_ready(app), groups=["plan"])
        assert _model(app).tensor_parallel_size == 2  # with 20 GiB kept free it needs both
        assert "fill free memory" in str(app.screen.query_one("#reserve", Button).label)
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) != "PlanScreen")
        assert app.state.reserve_bytes == KEEP_FREE_BYTES
