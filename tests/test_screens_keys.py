"""Quitting and keys: Ctrl-C / Ctrl-Q quit from every step (asking when work runs), q is typed
into a focused Input (never quits from it), Esc on the first step asks, the quit question fits 80x24,
and "copy curl" says where the text went."""

from __future__ import annotations

import threading

import pytest
from textual.geometry import Region
from textual.widgets import Input, Static

from screens.app import QUIT_QUESTION, QUIT_WHILE_BUSY, build_app
from tests.fixtures_screens import (
    SIZE,
    go_to_download,
    machine_ready,
    pick,
    screen_name,
    to_models,
    to_plan,
    wait_for,
)
from wizard.gpus import NvmlError


async def _type_q_then_quit(pilot, app, input_id: str, key: str) -> None:
    field = app.screen.query_one(input_id, Input)
    field.focus()
    await pilot.pause()
    before = field.value
    await pilot.press("q")
    await pilot.pause()
    assert field.value == before + "q"  # typed, not a quit
    assert app.return_code is None
    await pilot.press(key)
    await wait_for(pilot, lambda: app.return_code == 0)


@pytest.mark.parametrize("key", ["ctrl+c", "ctrl+q"])
async def test_quit_from_machine_with_the_describe_input_focused(fake_backend, key):
    fake_backend.spec = None
    fake_backend.nvml_error = NvmlError("no NVIDIA driver found", hint="use --gpus")
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: machine_ready(app), groups=["machine"])
        field_id = "#" + app.screen.query(Input).first().id
        await _type_q_then_quit(pilot, app, field_id, key)


@pytest.mark.parametrize("key", ["ctrl+c", "ctrl+q"])
async def test_quit_from_models_with_the_search_focused(fake_backend, key):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await _type_q_then_quit(pilot, app, "#search", key)


async def test_quit_from_plan_with_a_setting_focused(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "qwen2.5-7b")
        await to_plan(pilot)
        await _type_q_then_quit(pilot, app, "#name-0", "ctrl+c")


async def test_quit_from_done_with_the_prompt_focused(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await go_to_download(pilot)
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")
        await _type_q_then_quit(pilot, app, "#prompt", "ctrl+c")


async def test_ctrl_c_while_downloading_asks_and_keeps_what_is_done(fake_backend):
    permits = threading.Semaphore(0)
    fake_backend.file_permits = permits
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await go_to_download(pilot)
        await wait_for(pilot, lambda: app.busy())
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmScreen")
        assert str(app.screen.query_one("#question", Static).content) == QUIT_WHILE_BUSY
        await pilot.press("ctrl+c")  # a second Ctrl-C does not stack another question
        assert [screen_name(s) for s in app.screen_stack].count("ConfirmScreen") == 1
        await pilot.press("y")
        permits.release(10)
        await wait_for(pilot, lambda: app.return_code == 0)


async def test_escape_on_the_first_step_asks_before_quitting(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: machine_ready(app), groups=["machine"])
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmScreen")
        assert str(app.screen.query_one("#question", Static).content) == QUIT_QUESTION
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_name(app) == "MachineScreen")
        assert app.return_code is None
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmScreen")
        await pilot.press("y")
        await wait_for(pilot, lambda: app.return_code == 0)


async def test_the_quit_question_fits_80x24(fake_backend):
    permits = threading.Semaphore(0)
    fake_backend.file_permits = permits
    app = build_app(fake_backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await go_to_download(pilot)
        await wait_for(pilot, lambda: app.busy())
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmScreen")
        await pilot.pause()
        question = app.screen.query_one("#question", Static)
        assert app.screen.region.contains_region(question.region)
        width, height = question.size
        shown = " ".join(strip.text.strip() for strip in question.render_lines(Region(0, 0, width, height)))
        assert " ".join(shown.split()) == QUIT_WHILE_BUSY  # every word on screen, none cut
        await pilot.press("n")
        permits.release(10)


async def test_copy_curl_says_it_was_sent_to_the_terminal_and_shows_the_text(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await go_to_download(pilot)
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")
        curl = app.screen.query_one("#curl").text
        await pilot.press("ctrl+y")
        await pilot.pause()
        messages = [n.message for n in app._notifications]
        assert any(curl in m and "sent to the terminal's clipboard" in m.lower() for m in messages)
        assert not any(m == "curl command copied" for m in messages)
        assert app.clipboard == curl
