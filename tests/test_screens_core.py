"""Pilot: the whole wizard over the real core (CoreService), and a re-run that picks a model
already in the repository (the core's naming rule, as `modelwiz add` applies it). NVML is the fake driver, the Hub is the
fake server, planner/download/repository and the machine checks (a real podman service, the
test CDI spec) are real; only the launch is faked, at the core's boundary
(wizard.serve.start_server), since the Triton image cannot run here."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from textual.widgets import Input

from screens.app import build_app
from tests.fixtures_nvml import h100
from tests.fixtures_screens import (
    SEED_GPUS,
    SIZE,
    home_to_models,
    pick,
    plan_ready,
    screen_name,
    seeded_repository,
    text_of,
    to_models,
    to_plan,
    wait_for,
)
from wizard.core_service import CoreService
from wizard.manifest import load_manifest


@pytest.mark.podman
async def test_whole_flow_over_the_real_core(tmp_path, fake_nvml, fake_hub, monkeypatch, podman_service, cdi_gpus):
    # Failed machine checks block the launch: podman and the GPUs' CDI names must be there.
    monkeypatch.setenv("CONTAINER_HOST", podman_service.url)
    fake_nvml([h100(0)])
    launched = []

    def fake_start_server(repository, *, driver, options, reporter, reload, inputs):
        from wizard.container import launch_spec_for
        from wizard.launcher import LaunchEvent

        launched.append((repository, inputs.models, inputs.devices))
        reporter.on_log("I1127 model_repository_manager.cc: loading")
        for name in inputs.models:
            reporter.on_event(LaunchEvent("load", f"loading {name}", model=name))
            reporter.on_event(LaunchEvent("ready", f"{name} is ready", model=name))
        spec = launch_spec_for(
            repository,
            models=inputs.models,
            devices=inputs.devices,
            image="localhost/tritonserver:test",
            mount_point=inputs.mount_point,
        )
        return SimpleNamespace(spec=spec, result=None)

    monkeypatch.setattr("wizard.session.start_server", fake_start_server)
    repo = tmp_path / "repo"
    app = build_app(CoreService(repository=repo))
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "org/tiny-chat")
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "PlanScreen" and app.screen.plan is not None)
        plan = app.screen.plan
        assert plan.fits and [m.name for m in plan.models] == ["tiny-chat"]
        assert plan.models[0].instance_group.kind == "KIND_GPU"
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")

    # What the wizard built is what `modelwiz add` builds.
    entry = load_manifest(repo).get("tiny-chat")
    assert entry.complete and entry.revision == fake_hub.repos["org/tiny-chat"].sha
    assert (repo / "tiny-chat" / "config.pbtxt").is_file() and (repo / "tiny-chat" / "1" / "model.json").is_file()
    assert launched == [(repo, ("tiny-chat",), ("0",))]


async def test_rerun_over_the_real_core_resumes_an_unfinished_add(tmp_path, fake_hub):
    repo = tmp_path / "repo"
    seeded_repository(repo, finished=False)
    app = build_app(CoreService(spec=SEED_GPUS, repository=repo))
    async with app.run_test(size=SIZE) as pilot:
        await home_to_models(pilot)  # a re-run opens on the home screen; `a` adds models
        assert "tiny  (org/tiny)  unfinished" in text_of(app, "#existing")
        await pick(pilot, "org/tiny")
        await to_plan(pilot)
        plan = app.screen.plan
        assert plan.names == {"org/tiny": "tiny"}  # as `modelwiz add org/tiny` does: resumed, not tiny-2
        assert [m.name for m in plan.models] == ["tiny"]


async def test_rerun_over_the_real_core_refuses_a_finished_duplicate_until_named(tmp_path, fake_hub):
    repo = tmp_path / "repo"
    seeded_repository(repo, finished=True)
    app = build_app(CoreService(spec=SEED_GPUS, repository=repo))
    async with app.run_test(size=SIZE) as pilot:
        await home_to_models(pilot)
        await pick(pilot, "org/tiny")
        await pilot.click("#continue")
        await wait_for(
            pilot,
            lambda: screen_name(app) == "PlanScreen" and "already in the repository" in text_of(app, "#problem"),
            groups=["plan"],
        )
        assert "org/tiny is already in the repository as 'tiny'" in text_of(app, "#problem")  # the CLI's refusal
        app.screen.query_one("#name-0", Input).value = "tiny-copy"
        await wait_for(pilot, lambda: plan_ready(app), groups=["plan"])
        assert app.screen.plan.names == {"org/tiny": "tiny-copy"}
        assert [m.name for m in app.screen.plan.models] == ["tiny", "tiny-copy"]


async def test_cancel_in_the_wizard_then_a_rerun_resumes_without_a_duplicate(tmp_path, fake_hub, small_chunks):
    """The cancel message's promise, over the real core: the cancelled model is listed as
    unfinished, picking it again resumes it under its name (no `tiny-2`), keeping the finished files
    and the bytes of the file that was in progress (the rerun asks only for the rest of it)."""
    repo = tmp_path / "repo"
    held = "model-00001-of-00002.safetensors"
    fake_hub.hold_path = held  # its first 64 KiB arrive, then it waits for the gate
    fake_hub.gate.clear()
    app = build_app(CoreService(spec=SEED_GPUS, repository=repo))
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "org/tiny")
        await to_plan(pilot)
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DownloadScreen" and app.screen.running)
        await wait_for(pilot, lambda: sum(p.stat().st_size for p in (repo / "tiny").rglob("*.part")) >= 32 * 1024)
        await pilot.press("c")
        fake_hub.gate.set()
        await wait_for(pilot, lambda: not app.screen.running, groups=["download"])
        assert "Cancelled" in text_of(app, "#problem")
        await pilot.press("ctrl+q")
        await wait_for(pilot, lambda: app.return_code == 0)
    fake_hub.hold_path = None
    entry = load_manifest(repo).get("tiny")
    assert entry is not None and not entry.complete
    (part,) = (repo / "tiny").rglob("*.part")
    have = part.stat().st_size
    assert have >= 64 * 1024 and part.read_bytes() == fake_hub.repos["org/tiny"].files[held][:have]
    before = len(fake_hub.requests("GET", held))

    rerun = build_app(CoreService(spec=SEED_GPUS, repository=repo))
    async with rerun.run_test(size=SIZE) as pilot:
        await home_to_models(pilot)
        assert "tiny  (org/tiny)  unfinished: pick it again to resume" in text_of(rerun, "#existing")
        await pick(pilot, "org/tiny")
        await to_plan(pilot)
        assert rerun.screen.plan.names == {"org/tiny": "tiny"}
        await wait_for(pilot, lambda: "checking" not in text_of(rerun, "#readiness"), groups=["readiness"])
        await pilot.click("#continue")  # no podman here: Download only, which writes the repository
        await wait_for(pilot, lambda: screen_name(rerun) != "PlanScreen")
        await wait_for(
            pilot,
            lambda: screen_name(rerun) != "DownloadScreen" or not rerun.screen.running,
            groups=["download"],
        )
    assert load_manifest(repo).get("tiny").complete
    assert not (repo / "tiny-2").exists() and load_manifest(repo).get("tiny-2") is None
    assert [r.headers.get("range") for r in fake_hub.requests("GET", held)[before:]] == [f"bytes={have}-"]
    assert not part.exists()
