"""The home screen: a re-run opens on it; every action works from its key and from the command
palette, and every failure ends in a line with the reason and the way forward.

Most tests run over the fake service (tests/fixtures_screens.FakeService); the last ones run over
the real CoreService with the fake NVML driver and the fake Hub (podman unreachable)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from textual.app import App
from textual.widgets import DataTable, Input, Log

from screens.app import build_app
from screens.home import send_to_clipboard
from screens.home_panels import ChatScreen, LogScreen, YesNoScreen
from tests.fixtures_nvml import MiB, h100
from tests.fixtures_screens import (
    SEED_GPUS,
    SIZE,
    existing_llama_plan,
    home_ready,
    pick,
    screen_name,
    seeded_repository,
    text_of,
    to_models,
    to_plan,
    unfinished,
    wait_for,
)
from wizard.core_service import CoreService
from wizard.errors import ModelwizError
from wizard.manifest import load_manifest
from wizard.units import GiB

QWEN = "Qwen/Qwen2.5-7B-Instruct"
QWEN_NAME = "qwen2.5-7b-instruct"
URL = "http://127.0.0.1:8000"


@pytest.fixture
def rerun(fake_backend):
    fake_backend.existing = (existing_llama_plan(),)
    return fake_backend


async def open_home(pilot):
    await wait_for(pilot, lambda: home_ready(pilot.app), groups=["home-poll"])


async def settle(pilot, predicate):
    """Until `predicate()` holds, letting the home screen's workers finish first."""
    await wait_for(pilot, predicate, groups=["home-action", "launch", "home-poll", "home-log", "reply"])


def notice(app) -> str:
    return text_of(app, "#notice")


def row_states(app) -> dict[str, str]:
    return {m.name: m.state for m in app.screen.models}


async def test_rerun_opens_on_home_with_server_models_plan_and_gpus(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        assert "not running" in text_of(app, "#server") and "modelwiz up" in text_of(app, "#server")
        assert row_states(app) == {QWEN_NAME: "stopped"}
        table = app.screen.query_one("#models", DataTable)
        assert str(table.get_row(QWEN_NAME)[2]) == "tp 1 · 32k · 0.45"
        assert "plan  tp 1 · 32,768 tokens · util 0.45 · 3.0 at once" in text_of(app, "#detail")
        assert "launch with l" in text_of(app, "#detail")
        gpus = text_of(app, "#gpus")
        assert "GPU 0 · NVIDIA H100 80GB HBM3" in gpus and "planned 35.6 GiB of 79.2 GiB" in gpus  # 0.45 x 79.2
        assert "planned 0 B" in gpus  # GPU 1 carries nothing
        assert "described: no live use" in gpus
    assert ("existing_models",) in rerun.calls


async def test_first_run_still_opens_on_the_machine_step(fake_backend):
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "MachineScreen")


async def test_launch_then_the_server_shows_running_with_its_endpoint(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("l")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "ready"})
        assert "the server is up; ready: qwen2.5-7b-instruct" in notice(app)
        assert "running" in text_of(app, "#server")
        assert f"Triton HTTP (/v2)  {URL}" in text_of(app, "#endpoints")
    assert ("relaunch",) in rerun.calls


async def test_failed_launch_says_why_and_the_fix_then_relaunches(rerun):
    rerun.podman_ok = False
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("l")
        await settle(pilot, lambda: "cannot reach the podman service" in notice(app))
        assert "fix: start it: systemctl --user enable --now podman.socket" in notice(app)
        rerun.podman_ok = True  # the user fixed it: the same key again
        await pilot.press("l")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "ready"})


async def test_a_model_that_fails_to_load_shows_its_reason_and_the_log(rerun):
    rerun.launch_error = ModelwizError("qwen2.5-7b-instruct did not load", hint="see the log")
    rerun.log = ("I1127 server.cc:674] Started", "E1127 model.py:312] torch.OutOfMemoryError: CUDA out of memory")
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("l")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "failed"})
        assert "did not load" in notice(app) and "fix: see the log" in notice(app)
        detail = text_of(app, "#detail")
        assert "failed: CUDA out of memory" in detail and "view the log with g" in detail
        await pilot.press("g")
        await settle(pilot, lambda: isinstance(app.screen, LogScreen))
        assert app.screen.query_one("#log", Log).lines == list(rerun.log)
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "HomeScreen")


async def test_reload_needs_a_server_and_reports_a_failed_load(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("o")
        assert "the server is not running: launch it with l" in notice(app)
        await pilot.press("l")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "ready"})
        await pilot.press("o")
        await settle(pilot, lambda: "loaded again" in notice(app))
        assert ("reload", QWEN_NAME) in rerun.calls
        rerun.reload_error = "failed to load 'qwen2.5-7b-instruct': out of memory"
        await pilot.press("o")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "failed"})
        assert "did not load" in notice(app) and "fix: read the server log" in notice(app)


async def test_remove_asks_first_and_no_keeps_the_model(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, YesNoScreen))
        assert f"Remove {QWEN_NAME} from the repository" in str(app.screen.question)
        await pilot.press("n")
        await wait_for(pilot, lambda: screen_name(app) == "HomeScreen")
        assert not [c for c in rerun.calls if c[0] == "remove"]
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, YesNoScreen))
        await pilot.press("y")
        # Then whether the weights go too, with their size (as `modelwiz remove` asks).
        await wait_for(pilot, lambda: isinstance(app.screen, YesNoScreen) and "weights" in str(app.screen.question))
        assert "Delete its weights (15.0 GiB) too?" in str(app.screen.question)
        await pilot.press("y")
        await settle(pilot, lambda: "removed qwen2.5-7b-instruct" in notice(app) and not app.screen.models)
        assert ("remove", QWEN_NAME, True) in rerun.calls
        assert "no model: press a to add one" in text_of(app, "#detail")


async def test_stop_asks_then_stops_the_server(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("l")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "ready"})
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, YesNoScreen))
        await pilot.press("y")
        await settle(pilot, lambda: "server stopped" in notice(app) and row_states(app) == {QWEN_NAME: "stopped"})
        assert "not running" in text_of(app, "#server")
        await pilot.press("s")
        await wait_for(pilot, lambda: isinstance(app.screen, YesNoScreen))
        await pilot.press("y")
        await settle(pilot, lambda: "no server was running" in notice(app))


async def test_chat_streams_a_reply_from_a_ready_model(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("c")
        assert "the server is not running" in notice(app)
        await pilot.press("l")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "ready"})
        await pilot.press("c")
        await wait_for(pilot, lambda: isinstance(app.screen, ChatScreen))
        app.screen.query_one("#prompt", Input).value = "What is Triton?"
        await pilot.press("enter")
        await settle(pilot, lambda: text_of(app, "#reply") == "Triton serves models.")
        assert ("generate", QWEN_NAME, "What is Triton?") in rerun.calls
        await pilot.press("escape")
        await wait_for(pilot, lambda: screen_name(app) == "HomeScreen")


async def test_chat_with_a_model_that_is_not_ready_says_what_to_do(rerun):
    rerun.server_running = True  # up, but the model is not loaded
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("c")
        assert "is stopped, not ready: launch with l, or reload it with o" in notice(app)


async def test_copy_endpoint_sends_it_and_shows_it(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("y")
        assert "no endpoint to copy: launch it with l" in notice(app)
        await pilot.press("l")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "ready"})
        await pilot.press("y")
        assert app.clipboard == URL
        assert "copied (sent to the terminal's clipboard): " + URL in notice(app)
        assert "without OSC 52 select it here" in notice(app)


def test_copy_is_only_called_sent_when_a_terminal_took_it():
    app = App()  # not running: no driver, so Textual's copy_to_clipboard writes no OSC 52
    assert send_to_clipboard(app, URL) is False
    assert app.clipboard == URL


async def test_log_without_a_server_says_so(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("g")
        await settle(pilot, lambda: "the server has no log: it is not running (launch it with l)" in notice(app))


async def test_add_goes_to_the_model_list_and_back_returns_home(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: screen_name(app) == "ModelsScreen")
        await pilot.press("escape")
        await open_home(pilot)


async def test_resume_continues_the_unfinished_add_without_a_duplicate(rerun):
    rerun.existing = (unfinished(existing_llama_plan()),)
    rerun.downloaded[QWEN] = 3 * GiB  # bytes a cancelled run left
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        assert row_states(app) == {QWEN_NAME: "unfinished"}
        table = app.screen.query_one("#models", DataTable)
        assert "↓ unfinished 3.0/15.0 GiB" in str(table.get_row(QWEN_NAME)[1])
        await pilot.press("r")
        await wait_for(pilot, lambda: screen_name(app) == "PlanScreen" and app.screen.plan is not None, groups=["plan"])
        plan = app.screen.plan
        assert plan.names == {QWEN: QWEN_NAME}  # resumed under its name, not qwen2.5-7b-instruct-2
        assert [m.name for m in plan.models] == [QWEN_NAME]
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")
        await pilot.click("#finish")
        await open_home(pilot)  # the guided steps come back home
    assert ("write_repository", (QWEN_NAME,)) in rerun.calls
    assert [c for c in rerun.calls if c[0] == "download"] == [("download", QWEN)]


async def test_resume_on_a_finished_model_says_which_rows_can(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("r")
        assert "is not an unfinished download" in notice(app) and "pick a row marked unfinished" in notice(app)
        assert screen_name(app) == "HomeScreen"


async def test_every_action_is_in_the_command_palette(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        commands = {c.title: c for c in app.get_system_commands(app.screen)}
        for title in ("Add models (a)", "Resume (r)", "Launch (l)", "Reload (o)", "Remove (x)", "Stop (s)"):
            assert title in commands
        for title in ("Chat (c)", "Copy URL (y)", "Log (g)"):
            assert title in commands
        commands["Launch (l)"].callback()
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "ready"})


async def test_gpu_memory_in_use_now_is_read_again_while_open(rerun):
    rerun.spec = None
    rerun.gpu_used = {"0": 10 * GiB}
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        assert "· in use 10.0 GiB" in text_of(app, "#gpus")
        rerun.gpu_used = {"0": 40 * GiB}
        seen = app.screen.refreshed
        await wait_for(pilot, lambda: app.screen.refreshed > seen, groups=["home-poll"])  # the timer looks again
        assert "· in use 40.0 GiB" in text_of(app, "#gpus")


async def test_quit_prints_what_is_needed_next(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("l")
        await settle(pilot, lambda: row_states(app) == {QWEN_NAME: "ready"})
        await pilot.press("q")
    summary = app.return_value
    assert app.return_code == 0
    assert f"Triton HTTP (/v2)  {URL}" in summary
    assert f"curl -s -X POST {URL}/v2/models/{QWEN_NAME}/generate" in summary
    for command in (f"modelwiz chat {QWEN_NAME}", "modelwiz status", "modelwiz down"):
        assert command in summary


async def test_quit_with_the_server_down_says_how_to_start_it(rerun):
    app = build_app(rerun)
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("q")
    assert "The server is not running: `modelwiz up` starts it." in app.return_value


# ---------------------------------------------------------------------------------------------
# Over the real core: fake NVML, fake Hub, a repository written by the real add session


@pytest.fixture
def no_podman(monkeypatch, tmp_path):
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/no-podman.sock")


async def test_home_over_the_real_core(tmp_path, fake_hub, fake_nvml, no_podman):
    repo = tmp_path / "repo"
    seeded_repository(repo, finished=True)
    nvml = fake_nvml([h100(0, used_by_processes=2048 * MiB)])
    app = build_app(CoreService(repository=repo))
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        assert row_states(app) == {"tiny": "stopped"}  # no server: podman is not reachable
        gpus = text_of(app, "#gpus")
        assert "GPU 0 · NVIDIA H100 80GB HBM3" in gpus and "· in use 2." in gpus and "planned" in gpus
        nvml.gpus[0] = replace(nvml.gpus[0], used_by_processes=30 * 1024 * MiB)
        seen = app.screen.refreshed
        await wait_for(pilot, lambda: app.screen.refreshed > seen, groups=["home-poll"])
        assert "· in use 30." in text_of(app, "#gpus")  # NVML read again
        await pilot.press("l")  # the same start_server as `modelwiz up`: podman is away
        await settle(pilot, lambda: "fix:" in notice(app))
        await pilot.press("g")
        await settle(pilot, lambda: "fix:" in notice(app) and "podman" in notice(app).lower())
        weights = repo / "tiny" / load_manifest(repo).get("tiny").weights
        assert any(weights.rglob("*.safetensors"))
        await pilot.press("x")
        await wait_for(pilot, lambda: isinstance(app.screen, YesNoScreen))
        await pilot.press("y")
        await wait_for(pilot, lambda: isinstance(app.screen, YesNoScreen) and "weights" in str(app.screen.question))
        await pilot.press("n")  # keep the weights
        await settle(pilot, lambda: "removed tiny" in notice(app) and not app.screen.models)
    manifest = load_manifest(repo)
    assert manifest is not None and manifest.get("tiny") is None  # as `modelwiz remove tiny --keep-weights`
    assert any(weights.rglob("*.safetensors"))  # ... leaves it, and home no longer lists it


async def test_resume_over_the_real_core(tmp_path, fake_hub, no_podman):
    repo = tmp_path / "repo"
    seeded_repository(repo, finished=False)
    app = build_app(CoreService(spec=SEED_GPUS, repository=repo))
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        assert row_states(app) == {"tiny": "unfinished"}
        assert "resume the download with r" in text_of(app, "#detail")
        await pilot.press("r")
        await wait_for(pilot, lambda: screen_name(app) == "PlanScreen" and app.screen.plan is not None, groups=["plan"])
        assert app.screen.plan.names == {"org/tiny": "tiny"}


def test_catalog_fills_the_list_when_the_hub_is_unreachable(tmp_path, monkeypatch):
    from tests.fixtures_hub import point_hf_at

    point_hf_at(monkeypatch, "http://127.0.0.1:9", tmp_path)  # the discard port: connection refused
    service = CoreService(spec="H100-80GB")
    found = service.popular_models(service.load_inventory("H100-80GB"))
    ids = [c.repo_id for c in found]
    assert ids[:2] == ["Qwen/Qwen2.5-7B-Instruct", "meta-llama/Llama-3.1-8B-Instruct"]
    qwen = found[0]
    assert qwen.parameters == 7_615_616_512 and qwen.weights_bytes == 2 * 7_615_616_512 and qwen.fit == "fits"
    assert found[1].gated == "manual"
    assert next(c for c in found if c.repo_id == "Qwen/Qwen2.5-72B-Instruct").fit != "fits"


async def test_model_list_shows_the_catalog_at_once_then_the_hub_replaces_it(fake_hub):
    from wizard import hub

    fake_hub.search_gate.clear()  # the Hub is slow to answer the search
    app = build_app(CoreService(spec="H100-80GB"))
    try:
        async with app.run_test(size=SIZE) as pilot:
            await wait_for(pilot, lambda: screen_name(app) == "MachineScreen" and app.screen.checks_done)
            await pilot.click("#continue")
            await wait_for(pilot, lambda: screen_name(app) == "ModelsScreen" and bool(app.screen.results))
            assert app.screen.results[0].repo_id == "Qwen/Qwen2.5-7B-Instruct"  # the built-in catalog, before the Hub
            fake_hub.search_gate.set()
            from_hub = [r.repo_id for r in hub.search_models("", limit=12)]
            await wait_for(pilot, lambda: [c.repo_id for c in app.screen.results] == from_hub, groups=["search"])
            assert "Qwen/Qwen2.5-7B-Instruct" not in from_hub  # the Hub's answer replaced the catalog
    finally:
        fake_hub.search_gate.set()


async def test_rerun_with_nothing_new_never_says_no_model_given(tmp_path, fake_hub, no_podman):
    repo = tmp_path / "repo"
    seeded_repository(repo, finished=True)
    app = build_app(CoreService(spec=SEED_GPUS, repository=repo))
    async with app.run_test(size=SIZE) as pilot:
        await open_home(pilot)
        await pilot.press("a")
        await wait_for(pilot, lambda: screen_name(app) == "ModelsScreen")
        await pilot.click("#continue")  # nothing picked: the guided steps end, back home
        await open_home(pilot)
        shown = " ".join(str(w.render()) for w in app.screen.query("Static"))
        assert "no MODEL given" not in shown and row_states(app) == {"tiny": "stopped"}


async def test_download_only_lands_home_and_relaunches(tmp_path, fake_hub, monkeypatch):
    """Over the real core with podman away: the plan offers "download only", the downloaded model
    lands on the home screen (not a plan that calls its name taken), and `l` launches it, showing
    the fix when the launch fails."""
    attempts = []

    def start_server(repository, **kwargs):
        attempts.append(repository)
        raise ModelwizError("cannot reach the podman service", hint="start it: systemctl --user start podman.socket")

    monkeypatch.setattr("wizard.session.start_server", start_server)
    monkeypatch.setattr("wizard.serve.start_server", start_server)
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/no-podman.sock")
    repo = tmp_path / "repo"
    app = build_app(CoreService(spec=SEED_GPUS, repository=repo))
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "org/tiny")
        await to_plan(pilot)
        await pilot.click("#continue")  # "Download only": the failed podman check stops the launch
        await wait_for(
            pilot, lambda: screen_name(app) == "DownloadScreen" and not app.screen.running, groups=["download"]
        )
        assert "launch it from the home screen" in str(app.screen.query_one("#problem").render())
        await pilot.click("#finish")
        await wait_for(pilot, lambda: screen_name(app) == "HomeScreen")
        await open_home(pilot)
        assert row_states(app) == {"tiny": "stopped"}
        assert "already in the repository" not in notice(app)
        await pilot.press("l")
        await settle(pilot, lambda: "fix: start it: systemctl --user start podman.socket" in notice(app))
    assert attempts == [repo]  # the failed podman check stopped the wizard's launch; `l` went to start_server
