"""The two wizards are one flow: the same answers through the Textual app (Pilot) and the plain
prompts (scripted questionary) end in the same `WizardState` and the same calls to the service;
a re-run that picks a model already in the repository follows the core's rule in both (an
unfinished add is resumed under its name; a finished one is refused until it is given a name);
a failed machine check stops the launch in both ("download only": the repository is written,
nothing is launched); and a re-run resumes an unfinished download from the home screen / home step
the same way in both.
"""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from textual.widgets import Button, Input

from screens.app import build_app
from screens.plan import PlanScreen
from tests.fixtures_screens import (
    SIZE,
    FakeService,
    ScriptedQuestionary,
    existing_llama_plan,
    first_matching,
    home_ready,
    home_to_models,
    pick,
    plan_ready,
    screen_name,
    text_of,
    to_models,
    to_plan,
    unfinished,
    wait_for,
)
from wizard import plain
from wizard.errors import Cancelled, ModelwizError
from wizard.service import ModelChoice
from wizard.wizard_flow import advance
from wizard.wizard_state import WizardState

QWEN = "Qwen/Qwen2.5-7B-Instruct"
QWEN_NAME = "qwen2.5-7b-instruct"
# What the service was asked to do (searching as one types differs by UI, and is not a decision).
DECISIONS = ("model_details", "plan", "download", "write_repository", "launch", "generate")


def decisions(service: FakeService) -> list[tuple[object, ...]]:
    return [c for c in service.calls if c[0] in DECISIONS]


def run_plain(service: FakeService, script: list[tuple[str, str, object]]) -> tuple[int, WizardState, str]:
    q = ScriptedQuestionary(script)
    out = io.StringIO()
    wizard = plain.PlainWizard(service, plain.Prompts(q), out)
    try:
        code = wizard.run(WizardState(spec=service.spec))
    except Cancelled as stopped:  # the user chose Quit
        code = stopped.exit_code
    assert not q.script, f"prompts not asked: {q.script}"
    return code, wizard.state, out.getvalue()


async def run_tui(service: FakeService) -> WizardState:
    """Pick Qwen, set its context to 8k, download and launch, ask one prompt, finish."""
    app = build_app(service)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "qwen2.5-7b")
        await to_plan(pilot)
        screen = app.screen
        assert isinstance(screen, PlanScreen)
        screen.query_one("#len-0", Input).value = "8k"
        await wait_for(pilot, lambda: screen.plan is not None and screen.plan.models[0].max_model_len == 8192)
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")
        app.screen.query_one("#prompt", Input).value = "hello"
        await pilot.press("enter")
        await wait_for(pilot, lambda: "Triton serves models." in text_of(app, "#reply"), groups=["reply"])
        await pilot.click("#finish")
        await wait_for(pilot, lambda: app.return_code == 0)
    return app.state


async def test_one_session_through_both_uis_ends_the_same(tmp_path):
    tui_service = FakeService(repository=tmp_path / "models")
    tui_state = await run_tui(tui_service)

    plain_service = FakeService(repository=tmp_path / "models")
    code, plain_state, _ = run_plain(
        plain_service,
        [
            ("text", "Search", "qwen2.5-7b"),
            ("select", "Pick a model", first_matching(QWEN)),
            ("confirm", "Add another", False),
            ("select", "What now", "Change a context length"),
            ("select", "Which model", QWEN_NAME),
            ("text", "Context length", "8k"),
            ("select", "What now", "Download and launch"),
            ("text", "Test prompt", "hello"),
            ("text", "Test prompt", ""),
        ],
    )
    assert code == 0
    assert plain_state == tui_state
    assert tui_state.choices[0].name is None and tui_state.choices[0].max_model_len == 8192
    assert tui_state.plan is not None and tui_state.plan.names == {QWEN: QWEN_NAME}
    assert tui_state.endpoints is not None and tui_state.endpoints.models == (QWEN_NAME,)
    assert decisions(plain_service) == decisions(tui_service)
    assert ("write_repository", (QWEN_NAME,)) in decisions(tui_service)


# ---------------------------------------------------------------------------------------------
# A re-run that picks a model already in the repository


async def test_tui_rerun_resumes_an_unfinished_model_under_its_name(fake_backend):
    fake_backend.existing = (unfinished(existing_llama_plan()),)
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await home_to_models(pilot)
        assert f"{QWEN_NAME}  ({QWEN})  unfinished: pick it again to resume" in text_of(app, "#existing")
        await pick(pilot, "qwen2.5-7b")
        await to_plan(pilot)
        plan = app.screen.plan
        assert plan.names == {QWEN: QWEN_NAME}  # resumed, not a second copy
        assert [m.name for m in plan.models] == [QWEN_NAME]
        assert not app.screen.query_one("#card--1").display  # its "in the repository" card makes room
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")
    assert ("write_repository", (QWEN_NAME,)) in fake_backend.calls


def test_plain_rerun_resumes_an_unfinished_model_under_its_name(fake_backend):
    fake_backend.existing = (unfinished(existing_llama_plan()),)
    code, state, out = run_plain(
        fake_backend,
        [
            ("select", "Home", "Add models"),  # as the TUI's home screen's `a`
            ("text", "Search", "qwen2.5-7b"),
            ("select", "Pick a model", first_matching(QWEN)),
            ("confirm", "Add another", False),
            ("select", "What now", "Download and launch"),
            ("text", "Test prompt", ""),
            ("select", "Home", "Quit"),  # the steps come back to the home step
        ],
    )
    assert code == 0
    assert state.plan is not None and state.plan.names == {QWEN: QWEN_NAME}
    assert ("write_repository", (QWEN_NAME,)) in fake_backend.calls
    assert f"in the repository: {QWEN_NAME}  ({QWEN})  unfinished: pick it again to resume" in out
    assert f"{QWEN_NAME}-2" not in out


async def test_tui_rerun_refuses_a_finished_duplicate_until_it_is_named(fake_backend):
    fake_backend.existing = (existing_llama_plan(),)
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await home_to_models(pilot)
        await pick(pilot, "qwen2.5-7b")
        await pilot.click("#continue")
        await wait_for(
            pilot,
            lambda: screen_name(app) == "PlanScreen" and "already in the repository" in text_of(app, "#problem"),
            groups=["plan"],
        )
        assert f"as '{QWEN_NAME}'" in text_of(app, "#problem") and "give a name" in text_of(app, "#problem")
        assert app.screen.plan is None and app.screen.query_one("#continue").disabled
        app.screen.query_one("#name-0", Input).value = "qwen-copy"
        await wait_for(pilot, lambda: app.screen.plan is not None, groups=["plan"])
        assert app.screen.plan.names == {QWEN: "qwen-copy"}
        assert [m.name for m in app.screen.plan.models] == [QWEN_NAME, "qwen-copy"]
        assert not app.screen.query_one("#continue").disabled


def test_plain_rerun_refuses_a_finished_duplicate_until_it_is_named(fake_backend):
    fake_backend.existing = (existing_llama_plan(),)

    def no_go(choices):
        assert "Download and launch" not in choices
        return "Name a model"

    def can_go(choices):
        assert "Download and launch" in choices
        return "Quit"

    code, _, out = run_plain(
        fake_backend,
        [
            ("select", "Home", "Add models"),
            ("text", "Search", "qwen2.5-7b"),
            ("select", "Pick a model", first_matching(QWEN)),
            ("confirm", "Add another", False),
            ("select", "What now", no_go),
            ("select", "Which model", QWEN),
            ("text", "Name for", "qwen-copy"),
            ("select", "What now", can_go),
        ],
    )
    assert code == 130
    assert f"✖ {QWEN} is already in the repository as '{QWEN_NAME}'; give a name to add another copy" in out
    assert "  qwen-copy  (Qwen/Qwen2.5-7B-Instruct)" in out
    plans = [c[1] for c in fake_backend.calls if c[0] == "plan"]
    assert [tuple(ch.name for ch in p) for p in plans] == [(None,), ("qwen-copy",)]


# ---------------------------------------------------------------------------------------------
# A failed machine check stops the launch, in both UIs, before anything is written


async def test_tui_failed_podman_check_stops_the_launch(fake_backend):
    """The plan knows podman is down before a byte moves: it offers Download only, the download
    is allowed (only the launch needs podman), the repository is written for `modelwiz up`, and
    nothing is launched."""
    fake_backend.podman_ok = False
    app = build_app(fake_backend)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "qwen2.5-7b")
        await to_plan(pilot)
        await wait_for(pilot, lambda: "checking" not in text_of(app, "#readiness"), groups=["readiness"])
        readiness = text_of(app, "#readiness")
        assert "✖ Podman: cannot reach the podman service" in readiness
        assert "fix: start it: systemctl --user enable --now podman.socket" in readiness
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DownloadScreen" and app.screen.query_one("#finish").display)
    assert QWEN in fake_backend.downloaded  # the download was allowed: only the launch needs podman
    assert not any(c[0] == "launch" for c in fake_backend.calls)


def test_plain_failed_podman_check_stops_the_launch(fake_backend):
    """As the TUI: the plan lists the failed podman row with its fix and offers Download only;
    the download runs, the repository is written for `modelwiz up`, nothing is launched, and the
    run ends saying how to launch."""
    fake_backend.podman_ok = False

    def download_only(choices):
        assert "Download and launch" not in choices and "Check the launch again" in choices
        return "Download only"

    code, state, out = run_plain(
        fake_backend,
        [
            ("text", "Search", "qwen2.5-7b"),
            ("select", "Pick a model", first_matching(QWEN)),
            ("confirm", "Add another", False),
            ("select", "What now", download_only),
        ],
    )
    assert code == 0 and not state.launch
    assert "✖ Podman: cannot reach the podman service" in out
    assert "fix: start it: systemctl --user enable --now podman.socket" in out
    assert QWEN in fake_backend.downloaded
    assert ("write_repository", (QWEN_NAME,)) in fake_backend.calls
    assert not any(c[0] == "launch" for c in fake_backend.calls)
    assert out.rstrip().endswith(
        "The server is not running: `modelwiz up` starts it.\n  modelwiz status    the models and their plans"
    )


def test_plain_refuses_to_launch_when_a_check_fails_after_the_plan(fake_backend):
    """The launch step still refuses on a failed machine check (write_and_launch), before writing."""
    fake_backend.podman_ok = False
    state = WizardState(spec=fake_backend.spec)
    q = ScriptedQuestionary([])
    wizard = plain.PlainWizard(fake_backend, plain.Prompts(q), io.StringIO())
    state, _ = advance(state, "machine", wizard.machine(state))  # the checks say podman is down
    assert state.inventory is not None
    choices = (ModelChoice(QWEN),)
    state = state.with_(choices=choices, plan=fake_backend.plan(state.inventory, choices, ()))
    with pytest.raises(ModelwizError, match="cannot launch: Podman: cannot reach the podman service") as info:
        wizard.launch(state)
    assert info.value.hint == "start it: systemctl --user enable --now podman.socket"
    assert not any(c[0] in ("write_repository", "launch") for c in fake_backend.calls)


# ---------------------------------------------------------------------------------------------
# "Download only": the same session through both UIs


async def test_download_only_through_both_uis_ends_the_same(tmp_path):
    tui_service = FakeService(repository=tmp_path / "tui")
    tui_service.cdi_ok = False  # the launch would stop: no CDI spec for the planned GPU
    app = build_app(tui_service)
    async with app.run_test(size=SIZE) as pilot:
        await to_models(pilot)
        await pick(pilot, "qwen2.5-7b")
        await to_plan(pilot)
        await wait_for(pilot, lambda: plan_ready(app), groups=["readiness"])
        assert str(app.screen.query_one("#continue", Button).label) == "Download only"
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DownloadScreen" and app.screen.query_one("#finish").display)
        await pilot.click("#finish")
        await wait_for(pilot, lambda: home_ready(app), groups=["home-poll"])
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: app.return_code == 0)
    tui_state = app.state

    plain_service = FakeService(repository=tmp_path / "plain")
    plain_service.cdi_ok = False
    code, plain_state, out = run_plain(
        plain_service,
        [
            ("text", "Search", "qwen2.5-7b"),
            ("select", "Pick a model", first_matching(QWEN)),
            ("confirm", "Add another", False),
            ("select", "What now", "Download only"),
        ],
    )
    assert code == 0
    assert "✖ GPU access (CDI): no CDI spec declares nvidia.com/gpu=0" in out
    assert plain_state.launch is False
    # the same state, but for the disk check's path (each UI had its own repository)
    assert [c.key for c in plain_state.checks] == [c.key for c in tui_state.checks]
    assert replace(plain_state, checks=()) == replace(tui_state, checks=())
    assert [e.name for e in plain_state.existing] == [QWEN_NAME]  # in the repository, for `modelwiz up`
    assert decisions(plain_service) == decisions(tui_service)
    assert ("write_repository", (QWEN_NAME,)) in decisions(plain_service)
    assert not any(c[0] in ("launch", "relaunch") for c in plain_service.calls)


# ---------------------------------------------------------------------------------------------
# A re-run: the home screen / home step resumes an unfinished download


async def test_resume_from_home_through_both_uis_ends_the_same(tmp_path):
    tui_service = FakeService(repository=tmp_path / "models", existing=(unfinished(existing_llama_plan()),))
    app = build_app(tui_service)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: home_ready(app), groups=["home-poll"])
        await pilot.press("r")
        await wait_for(pilot, lambda: plan_ready(app), groups=["plan", "readiness"])
        await pilot.click("#continue")
        await wait_for(pilot, lambda: screen_name(app) == "DoneScreen")
        await pilot.click("#finish")
        await wait_for(pilot, lambda: home_ready(app), groups=["home-poll"])
        await pilot.press("ctrl+c")
        await wait_for(pilot, lambda: app.return_code == 0)
    tui_state = app.state

    plain_service = FakeService(repository=tmp_path / "models", existing=(unfinished(existing_llama_plan()),))
    code, plain_state, out = run_plain(
        plain_service,
        [
            ("select", "Home", f"Resume {QWEN_NAME}"),
            ("select", "What now", "Download and launch"),
            ("text", "Test prompt", ""),
            ("select", "Home", "Quit"),
        ],
    )
    assert code == 0
    assert plain_state == tui_state
    assert plain_state.choices == (ModelChoice(QWEN),) and plain_state.endpoints is not None
    assert decisions(plain_service) == decisions(tui_service)
    assert ("write_repository", (QWEN_NAME,)) in decisions(plain_service)
    assert "Triton is running as modelwiz-triton:" in out
