"""Snapshots of the machine, plan and download screens at 80x24 (reviewed before committing)."""

from __future__ import annotations

import threading
from pathlib import Path

import pytest

from screens.app import build_app
from tests.fixtures_screens import pick, screen_name, to_models, to_plan, wait_for

SIZE = (80, 24)


@pytest.fixture(autouse=True)
def fixed_paths(fake_backend):
    fake_backend.repository = Path("/srv/models")  # the fake never touches it; keeps snapshots stable


def test_machine_screen(snap_compare, fake_backend):
    fake_backend.podman_ok = False

    async def ready(pilot):
        await wait_for(pilot, lambda: screen_name(pilot.app) == "MachineScreen" and pilot.app.screen.checks_done)

    assert snap_compare(build_app(fake_backend), terminal_size=SIZE, run_before=ready)


async def _to_plan(pilot):
    await to_models(pilot)
    await pick(pilot, "qwen2.5-7b")
    await to_plan(pilot)
    await wait_for(pilot, lambda: "checking" not in str(pilot.app.screen.query_one("#readiness").render()))


def test_plan_screen(snap_compare, fake_backend):
    async def ready(pilot):
        await _to_plan(pilot)
        pilot.app.screen.set_focus(None)

    assert snap_compare(build_app(fake_backend), terminal_size=SIZE, run_before=ready)


def test_plan_screen_light_theme_wide(snap_compare, fake_backend):
    app = build_app(fake_backend)
    app.theme = "textual-light"

    async def ready(pilot):
        await _to_plan(pilot)
        pilot.app.screen.set_focus(None)

    assert snap_compare(app, terminal_size=(140, 34), run_before=ready)


def test_download_screen(snap_compare, fake_backend):
    permits = threading.Semaphore(0)
    fake_backend.file_permits = permits

    async def ready(pilot):
        await _to_plan(pilot)
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(pilot.app) == "DownloadScreen")
        permits.release(2)
        await wait_for(pilot, lambda: pilot.app.screen.totals.get(0, (0, 0))[0] > 4 * 1024**3)
        pilot.app.screen.set_focus(None)

    try:
        assert snap_compare(build_app(fake_backend), terminal_size=SIZE, run_before=ready)
    finally:
        permits.release(10)


def test_plan_screen_wide_dark(snap_compare, fake_backend):
    async def ready(pilot):
        await _to_plan(pilot)
        pilot.app.screen.set_focus(None)

    assert snap_compare(build_app(fake_backend), terminal_size=(160, 48), run_before=ready)


def test_plan_screen_light_small(snap_compare, fake_backend):
    app = build_app(fake_backend)
    app.theme = "textual-light"

    async def ready(pilot):
        await _to_plan(pilot)
        pilot.app.screen.set_focus(None)

    assert snap_compare(app, terminal_size=SIZE, run_before=ready)


def test_plan_screen_no_color(snap_compare, fake_backend, monkeypatch):
    monkeypatch.setenv("NO_COLOR", "1")  # read (and removed) by textual.App.__init__

    async def ready(pilot):
        await _to_plan(pilot)
        pilot.app.screen.set_focus(None)

    assert snap_compare(build_app(fake_backend), terminal_size=SIZE, run_before=ready)


def test_quit_dialog_while_downloading(snap_compare, fake_backend):
    permits = threading.Semaphore(0)
    fake_backend.file_permits = permits

    async def ready(pilot):
        await _to_plan(pilot)
        await pilot.click("#continue")
        await wait_for(pilot, lambda: pilot.app.busy())
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: screen_name(pilot.app) == "ConfirmScreen")

    try:
        assert snap_compare(build_app(fake_backend), terminal_size=SIZE, run_before=ready)
    finally:
        permits.release(10)
