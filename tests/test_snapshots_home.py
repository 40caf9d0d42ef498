"""Snapshots of the home screen at 80x24 and 160x48 (reviewed before committing): a running
server with one ready model, one that failed with its reason, and one unfinished download."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from screens.app import build_app
from tests.fixtures_screens import existing_llama_plan, home_ready, unfinished, wait_for
from wizard.service import ModelState
from wizard.units import GiB


@pytest.fixture
def home_backend(fake_backend):
    fake_backend.repository = Path("/srv/models")
    fake_backend.spec = None
    qwen = existing_llama_plan()
    assert qwen.plan is not None
    small = replace(
        qwen,
        name="qwen2.5-0.5b-instruct",
        source="Qwen/Qwen2.5-0.5B-Instruct",
        plan=replace(qwen.plan, name="qwen2.5-0.5b-instruct", gpu_memory_utilization=0.2, devices=("1",)),
    )
    mistral = unfinished(
        replace(
            qwen,
            name="mistral-7b-instruct-v0.3",
            source="mistralai/Mistral-7B-Instruct-v0.3",
            plan=replace(qwen.plan, name="mistral-7b-instruct-v0.3", weights_bytes=14 * GiB, devices=("1",)),
        )
    )
    fake_backend.existing = (qwen, small, mistral)
    fake_backend.downloaded["mistralai/Mistral-7B-Instruct-v0.3"] = 5 * GiB
    fake_backend.server_running = True
    fake_backend.serving = {
        qwen.name: ModelState(qwen.name, "ready"),
        small.name: ModelState(small.name, "failed", "CUDA out of memory while profiling"),
    }
    fake_backend.gpu_used = {"0": 35 * GiB, "1": 3 * GiB}
    return fake_backend


async def _home(pilot):
    await wait_for(pilot, lambda: home_ready(pilot.app), groups=["home-poll"])
    pilot.app.screen.set_focus(None)


def test_home_screen_80x24(snap_compare, home_backend):
    assert snap_compare(build_app(home_backend), terminal_size=(80, 24), run_before=_home)


def test_home_screen_160x48(snap_compare, home_backend):
    assert snap_compare(build_app(home_backend), terminal_size=(160, 48), run_before=_home)
