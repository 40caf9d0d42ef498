"""Pilot tests: the whole wizard against the fake backend (real GPU inventory code)."""

from __future__ import annotations

import threading

from textual.widgets import Button, Input, Static

from screens.app import build_app
from tests.fixtures_screens import (
    SIZE,
    existing_llama_plan,
    go_to_download,
    home_to_models,
    pick,
    screen_name,
    text_of,
    to_models,
    to_plan,
    wait_for,
)
from wizard.errors import ModelwizError
from wizard.gpus import NvmlError


async def test_whole_flow_to_done(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        assert app.screen.results[0].repo_id == "Qwen/Qwen2.5-7B-Instruct"  # most downloaded first
        assert "Popular" in text_of(app, "#results-title")
        await pick(pilot, "qwen2.5-7b")
        assert [c.repo_id for c in app.screen.choices] == ["Qwen/Qwen2.5-7B-Instruct"]
        await to_plan(pilot)
        assert app.screen.plan.fits
        assert not app.screen.query_one("#continue", Button).disabled
        await pilot.click("#continue")
        # download runs, then launch, then the done screen
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")
        assert fake_backend.downloaded["Qwen/Qwen2.5-7B-Instruct"] == 15 * 1024**3 + 700  # weights + config.json
        assert ("write_repository", ("qwen2.5-7b-instruct",)) in fake_backend.calls
        prompt = app.screen.query_one("#prompt", Input)
        prompt.value = "hello"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Triton serves models." in text_of(app, "#reply"), groups=["reply"])
        assert (
            "curl -s -X POST http://127.0.0.1:8000/v2/models/qwen2.5-7b-instruct/generate"
            in app.screen.query_one("#curl").text
        )
        await pilot.click("#finish")
        await wait_for(pilot, lambda: app.return_code == 0)


async def test_no_gpu_then_describe(fake_backend):
    fake_backend.spec = None
    fake_backend.nvml_error = NvmlError(
        "no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded)",
        hint="install the NVIDIA driver, or use --gpus",
    )
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: screen_name(app) == "MachineScreen" and app.screen.checks_done, groups=["machine"]
        )
        assert "no NVIDIA driver found" in text_of(app, "#gpus")
        assert "fix: install the NVIDIA driver" in text_of(app, "#gpus")
        assert app.screen.query_one("#continue", Button).disabled
        assert app.screen.query_one("#describe").display
        await pilot.press(*"1xL40S")  # the describe box has focus
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.screen.inventory is not None and app.screen.checks_done, groups=["machine"])
        assert "L40S" in text_of(app, "#gpus")
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "ModelsScreen")
        assert app.state.spec == "1xL40S"
        await pilot.press("escape")  # back to the machine step
        await wait_for(pilot, lambda: screen_name(app) == "MachineScreen")


async def test_gated_model_is_refused_with_reason(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        gated = next(c for c in app.screen.results if c.repo_id == "meta-llama/Llama-3.1-8B-Instruct")
        assert gated.gated == "manual"  # said in the list, before picking
        await pick(pilot, "Llama-3.1-8B")
        assert app.screen.choices == []
        assert "accept its terms" in text_of(app, "#status")


async def test_model_stops_fitting_when_context_grows(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "qwen2.5-7b")
        await to_plan(pilot)
        app.screen.query_one("#len-0", Input).value = "128k"
        await wait_for(pilot, lambda: app.screen.plan.models[0].max_model_len == 131072, groups=["plan"])
        assert not app.screen.plan.fits
        assert app.screen.query_one("#continue", Button).disabled
        verdict = str(app.screen.query_one("#card-0 .verdict", Static).render())
        assert "does not fit" in verdict and "longer than the model" in verdict
        app.screen.query_one("#len-0", Input).value = "8192"
        await wait_for(
            pilot, lambda: app.screen.plan.models[0].max_model_len == 8192 and app.screen.plan.fits, groups=["plan"]
        )
        assert not app.screen.query_one("#continue", Button).disabled
        app.screen.query_one("#conc-0", Input).value = "zero"
        await pilot.pause(0.05)
        assert "whole number" in str(app.screen.query_one("#card-0 .verdict", Static).render())
        assert app.screen.query_one("#continue", Button).disabled


async def test_disk_full_stops_before_download(fake_backend):
    fake_backend.disk_free = 3 * 1024**3
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await go_to_download(pilot)
        await wait_for(pilot, lambda: app.screen.query_one("#problem").display, groups=["download"])
        problem = text_of(app, "#problem")
        assert "not enough disk space" in problem and "15.0 GiB" in problem and "3.0 GiB free" in problem
        assert not any(c[0] == "download" for c in fake_backend.calls)
        fake_backend.disk_free = 500 * 1024**3  # the user frees space and resumes
        await pilot.click("#resume")
        await wait_for(pilot, lambda: screen_name(app) == "LaunchScreen" or screen_name(app) == "DoneScreen")


async def test_cancel_keeps_progress_and_resumes(fake_backend):
    permits = threading.Semaphore(0)
    fake_backend.file_permits = permits
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await go_to_download(pilot)
        permits.release(2)  # config.json and the first shard
        await wait_for(pilot, lambda: app.screen.totals.get(0, (0, 0))[0] > 1024**3)
        await pilot.press("c")
        permits.release(10)
        await wait_for(pilot, lambda: not app.screen.running, groups=["download"])
        assert "Cancelled" in text_of(app, "#problem")
        kept = fake_backend.downloaded["Qwen/Qwen2.5-7B-Instruct"]
        assert 0 < kept < 15 * 1024**3
        await pilot.click("#resume")
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")


async def test_launch_failure_shows_reason_and_retries(fake_backend):
    fake_backend.launch_error = ModelwizError(
        "model qwen2.5-7b-instruct failed to load: CUDA out of memory",
        hint="lower its context length on the plan screen",
    )
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await go_to_download(pilot)
        await wait_for(pilot, lambda: screen_name(app) == "LaunchScreen" and not app.screen.running, groups=["launch"])
        assert "CUDA out of memory" in text_of(app, "#problem")
        assert "fix: lower its context length" in text_of(app, "#problem")
        assert "failed" in text_of(app, "#states")
        assert any("OutOfMemoryError" in line for line in app.screen.query_one("#log").lines)
        fake_backend.launch_error = None
        await pilot.click("#retry")
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")


async def test_back_from_a_failed_launch_is_the_home_screen(fake_backend):
    # The downloads are in the repository: Back goes to the home screen (relaunch, log, remove),
    # without downloading again, and the model is there, not a duplicate to refuse.
    fake_backend.launch_error = ModelwizError(
        "model failed to load: No available memory for the cache blocks",
        hint="lower its context length on the plan screen",
    )
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await go_to_download(pilot)
        await wait_for(pilot, lambda: screen_name(app) == "LaunchScreen" and not app.screen.running, groups=["launch"])
        downloads = [c for c in fake_backend.calls if c[0] == "download"]
        await pilot.click("#back")
        await wait_for(pilot, lambda: screen_name(app) == "HomeScreen" and app.screen.refreshed, groups=["home-poll"])
        assert [c for c in fake_backend.calls if c[0] == "download"] == downloads
        assert [m.name for m in app.screen.models] == ["qwen2.5-7b-instruct"]


async def test_rerun_adds_from_home_with_existing(fake_backend):
    fake_backend.existing = (existing_llama_plan(),)
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await home_to_models(pilot)
        assert "qwen2.5-7b-instruct" in text_of(app, "#existing")
        await pick(pilot, "Mistral")
        assert app.screen.choices[0].name is None  # the core names it
        await to_plan(pilot)
        names = [m.name for m in app.screen.plan.models]
        assert names == ["qwen2.5-7b-instruct", "mistral-7b-instruct-v0.3"]
        gpu0 = app.screen.plan.devices[0]
        assert gpu0.weights >= 15 * 1024**3  # the existing model's weights are on GPU 0
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "ModelsScreen")
        await pilot.press("escape")  # Back from the first step the home screen started: home again
        await wait_for(pilot, lambda: screen_name(app) == "HomeScreen")


async def test_quit_asks_while_downloading(fake_backend):
    permits = threading.Semaphore(0)
    fake_backend.file_permits = permits
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await go_to_download(pilot)
        await wait_for(pilot, lambda: app.busy())
        await pilot.press("q")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmScreen")
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_name(app) in ("DownloadScreen", "LaunchScreen", "DoneScreen"))
        await pilot.press("q")
        await wait_for(pilot, lambda: screen_name(app) == "ConfirmScreen")
        await pilot.press("y")
        permits.release(10)
        await wait_for(pilot, lambda: app.return_code == 0)
    assert fake_backend.downloaded.get("Qwen/Qwen2.5-7B-Instruct", 0) < 15 * 1024**3


async def test_quit_without_work_exits_at_once(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(
            pilot, lambda: screen_name(app) == "MachineScreen" and app.screen.checks_done, groups=["machine"]
        )
        await pilot.press("q")
        await wait_for(pilot, lambda: app.return_code == 0)
