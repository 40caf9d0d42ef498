"""Pilot: the whole wizard over the real core (CoreService). NVML is the fake driver, the Hub is the
fake server, planner/download/repository are real; only the launch is faked, at the core's
boundary (wizard.serve.start_server, as the add session calls it), since the Triton image cannot run here."""

from __future__ import annotations

from types import SimpleNamespace

from screens.app import build_app
from tests.fixtures_nvml import h100
from tests.test_screens_flow import SIZE, pick, screen_name, to_models, wait_for
from wizard.core_service import CoreService
from wizard.manifest import load_manifest


async def test_whole_flow_over_the_real_core(tmp_path, fake_nvml, fake_hub, monkeypatch):
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
        await wait_for(pilot, lambda: screen_name(app) == "PlanScreen" and app.screen.plan is not None, tries=300)
        plan = app.screen.plan
        assert plan.fits and [m.name for m in plan.models] == ["tiny-chat"]
        assert plan.models[0].instance_group.kind == "KIND_GPU"
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen", tries=600)

    # What the wizard built is what `modelwiz add` builds.
    entry = load_manifest(repo).get("tiny-chat")
    assert entry.complete and entry.revision == fake_hub.repos["org/tiny-chat"].sha
    assert (repo / "tiny-chat" / "config.pbtxt").is_file() and (repo / "tiny-chat" / "1" / "model.json").is_file()
    assert launched == [(repo, ("tiny-chat",), ("0",))]
