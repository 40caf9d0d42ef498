"""Progress that does not mislead: the overall download bar counts every pick from the start (it
never goes back when the next model starts), a stopped download shows no "waiting" model, the image
bar stays hidden until a pull reports bytes, and a failed launch marks the models it never reached."""

from __future__ import annotations

import threading

from textual.widgets import ProgressBar

from screens.app import build_app
from screens.download import NOT_STARTED
from screens.launch import IMAGE_CHECKING
from tests.fixtures_screens import SIZE, pick, screen_name, text_of, to_models, to_plan, wait_for
from wizard.errors import ModelwizError
from wizard.units import GiB


async def _download_two(pilot):
    await to_models(pilot)
    await pick(pilot, "qwen2.5-7b")
    await pick(pilot, "mistral-7b")
    await to_plan(pilot)
    await pilot.click("#continue")
    await wait_for(pilot, lambda: screen_name(pilot.app) in ("DownloadScreen", "LaunchScreen"))


async def test_overall_bar_counts_every_pick_and_never_goes_back(fake_backend):
    permits = threading.Semaphore(0)
    fake_backend.file_permits = permits
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _download_two(pilot)
        screen = app.screen
        overall = screen.query_one("#overall", ProgressBar)
        assert overall.total is not None and overall.total >= (15 + 14) * GiB  # before a byte moves
        sizes = [700, 7.5 * GiB, 7.5 * GiB, 700, 7 * GiB]  # qwen's three files, then mistral's first two
        seen: list[float] = []
        for k in range(len(sizes)):
            permits.release(1)
            expected = sum(sizes[: k + 1])
            await wait_for(pilot, lambda expected=expected: sum(d for d, _ in screen.totals.values()) >= expected)
            assert overall.total >= (15 + 14) * GiB
            seen.append(overall.percentage or 0.0)
        assert seen == sorted(seen)
        assert 0.45 < seen[2] < 0.6  # qwen done is about half of both, not 100 %
        permits.release(10)


async def test_cancel_marks_the_model_not_started(fake_backend):
    permits = threading.Semaphore(0)
    fake_backend.file_permits = permits
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _download_two(pilot)
        permits.release(2)
        await wait_for(pilot, lambda: app.screen.totals.get(0, (0, 0))[0] > 1024**3)
        second_bar = app.screen.query_one("#dl-1 .model-bar", ProgressBar)
        assert not second_bar.display  # no pulsing bar for a model that has not started
        await pilot.press("c")
        permits.release(10)
        await wait_for(pilot, lambda: not app.screen.running, groups=["download"])
        assert text_of(app, "#dl-1 .model-stats") == NOT_STARTED
        assert "stopped:" in text_of(app, "#dl-0 .model-stats") and "left" not in text_of(app, "#dl-0 .model-stats")


async def test_image_bar_hidden_until_a_pull_reports_and_failed_launch_marks_unreached(fake_backend, monkeypatch):
    fake_backend.launch_error = ModelwizError("Triton stopped: qwen2.5-7b-instruct failed to load", hint="see the log")
    gate = threading.Event()
    launch = fake_backend.launch

    def held_launch(plan, **kwargs):
        gate.wait(10)
        return launch(plan, **kwargs)

    monkeypatch.setattr(fake_backend, "launch", held_launch)
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _download_two(pilot)
        await wait_for(pilot, lambda: screen_name(app) == "LaunchScreen")
        assert not app.screen.query_one("#pull", ProgressBar).display
        assert text_of(app, "#pull-stats") == IMAGE_CHECKING
        gate.set()
        await wait_for(pilot, lambda: not app.screen.running, groups=["launch"])
        assert app.screen.query_one("#pull", ProgressBar).display  # the fake pulled 9 GiB
        states = text_of(app, "#states")
        assert "waiting" not in states
        assert "failed" in states
