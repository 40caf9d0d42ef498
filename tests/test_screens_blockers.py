"""Blockers before bytes: the plan lists what would stop the launch (podman, CDI for the planned
GPUs, the image) and then offers "Download only" (the repository is written, `modelwiz up` launches
later) or fixing first and checking again; Hugging Face login from inside the wizard (password
field, saved through the core, the token never on screen)."""

from __future__ import annotations

import logging

from textual.widgets import Button, Input

from screens.app import build_app
from screens.download import DOWNLOADED_ONLY
from screens.plan import DOWNLOAD_AND_LAUNCH, DOWNLOAD_ONLY
from tests.fixtures_screens import SIZE, pick, plan_ready, screen_name, text_of, to_models, to_plan, wait_for


async def _plan_qwen(pilot):
    await to_models(pilot)
    await pick(pilot, "qwen2.5-7b")
    await to_plan(pilot)
    await wait_for(pilot, lambda: plan_ready(pilot.app), groups=["readiness"])


async def test_a_ready_machine_downloads_and_launches(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _plan_qwen(pilot)
        readiness = text_of(app, "#readiness")
        assert "✔ Podman" in readiness and "✔ GPU access (CDI)" in readiness and "is on this machine" in readiness
        assert str(app.screen.query_one("#continue", Button).label) == DOWNLOAD_AND_LAUNCH


async def test_missing_cdi_for_described_gpus_offers_download_only(fake_backend):
    fake_backend.cdi_ok = False  # the GPUs are described (--gpus 2xH100-80GB): CDI is still checked
    fake_backend.image_here = False
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _plan_qwen(pilot)
        readiness = text_of(app, "#readiness")
        assert "✖ GPU access (CDI): no CDI spec declares nvidia.com/gpu=0" in readiness
        assert "fix: run `sudo nvidia-ctk cdi generate" in readiness
        assert "is not on this machine: the launch pulls it first" in readiness
        assert str(app.screen.query_one("#continue", Button).label) == DOWNLOAD_ONLY
        assert app.screen.query_one("#recheck").display
        # fixed meanwhile: Check again turns it back into Download & launch
        fake_backend.cdi_ok = True
        await pilot.click("#recheck")
        await wait_for(pilot, lambda: True, groups=["readiness"])
        assert str(app.screen.query_one("#continue", Button).label) == DOWNLOAD_AND_LAUNCH


async def test_download_only_writes_the_repository_and_never_launches(fake_backend):
    fake_backend.podman_ok = False
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await _plan_qwen(pilot)
        assert "✖ Podman: cannot reach the podman service" in text_of(app, "#readiness")
        assert str(app.screen.query_one("#continue", Button).label) == DOWNLOAD_ONLY
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DownloadScreen" and not app.screen.running)
        await wait_for(pilot, lambda: app.screen.query_one("#finish").display, groups=["download"])
        assert text_of(app, "#problem") == DOWNLOADED_ONLY
        assert ("write_repository", ("qwen2.5-7b-instruct",)) in fake_backend.calls
        await pilot.click("#finish")
        # The model is in the repository: the home screen launches it once podman is fixed.
        await wait_for(pilot, lambda: screen_name(app) == "HomeScreen")
    assert not any(c[0] == "launch" for c in fake_backend.calls)


async def test_log_in_from_the_wizard_with_a_hidden_token(fake_backend, caplog):
    caplog.set_level(logging.DEBUG)
    fake_backend.logged_in = False
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "llama-3.1-8b")
        assert "Ctrl+L to log in here" in text_of(app, "#status")
        await pilot.press("ctrl+l")
        await wait_for(pilot, lambda: screen_name(app) == "LoginScreen")
        field = app.screen.query_one("#token", Input)
        assert field.password and app.focused is field
        await pilot.press(*"hf_wrong")
        assert "hf_wrong" not in "".join(s.text for s in field.render_lines(field.region.reset_offset))
        await pilot.press("enter")
        await wait_for(pilot, lambda: "invalid or expired" in text_of(app, "#login-problem"), groups=["login"])
        assert field.value == ""  # not kept once used
        await pilot.press(*fake_backend.valid_token, "enter")
        await wait_for(pilot, lambda: screen_name(app) == "ModelsScreen", groups=["login"])
        assert fake_backend.logged_in
        assert any("Logged in to Hugging Face as tester" in n.message for n in app._notifications)
    assert fake_backend.valid_token not in caplog.text and "hf_wrong" not in caplog.text
