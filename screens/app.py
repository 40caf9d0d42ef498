"""ModelWizApp: the wizard's one flow worker walks the steps; screens return what the user chose.

`build_app(backend, args)` is the factory shared by `run_app` (the console script) and the tests.
Nothing heavy is imported here: the core's Hub/podman/protobuf modules load in workers, after the
first frame is painted.
"""

from __future__ import annotations

import argparse
import asyncio
from collections.abc import Iterable
from typing import Any

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from screens.step import BACK
from wizard.service import WizardService
from wizard.wizard_state import STEPS, WizardState

# Worker groups that mean "something is running that quitting would interrupt".
BUSY_GROUPS = frozenset({"download", "launch"})


class ModelWizApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "modelwiz"
    SUB_TITLE = "GPU workstation → Triton + vLLM"
    BINDINGS = [
        Binding("q", "request_quit", "Quit"),
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True),
    ]

    def __init__(self, backend: WizardService, args: argparse.Namespace | None = None) -> None:
        super().__init__()
        self.backend = backend
        self.args = args
        self.state = WizardState(spec=getattr(args, "gpus", None) or backend.spec)
        self.step = STEPS[0]

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static("Starting…", id="splash")
        yield Footer()

    def on_mount(self) -> None:
        # Start the steps after the first frame is on screen: the splash paints at bare-app speed.
        self.call_after_refresh(self.run_flow)

    # -- the flow -----------------------------------------------------------------------------
    @work(exclusive=True, group="flow", exit_on_error=True)
    async def run_flow(self) -> None:
        state = self.state
        index = 0
        try:
            existing = await asyncio.to_thread(self.backend.existing_models)
        except Exception as error:  # noqa: BLE001 - an unreadable repository is shown, not fatal
            self.notify(f"could not read the model repository: {error}", severity="warning")
            existing = ()
        state = state.with_(existing=tuple(existing))
        if state.existing:
            # A re-run lands on the model list, once the GPUs are known.
            try:
                inventory = await asyncio.to_thread(self.backend.load_inventory, state.spec)
            except Exception:  # noqa: BLE001 - the machine step explains it
                inventory = None
            if inventory is not None:
                state = state.with_(inventory=inventory)
                index = STEPS.index("models")
        while True:
            self.state = state
            self.step = STEPS[index]
            result = await self.push_screen_wait(self._screen_for(self.step, state))
            if result is BACK:
                index = max(0, index - 1)
                if STEPS[index] == "download" and self.step == "launch":
                    index -= 1  # back from a failed launch is the plan: the downloads are done
                continue
            state = _apply(self.step, state, result)
            if self.step == "done":
                self.state = state
                self.exit(0)
                return
            index += 1

    def _screen_for(self, step: str, state: WizardState) -> Screen[Any]:
        if step == "machine":
            from screens.machine import MachineScreen

            return MachineScreen(self.backend, state)
        if step == "models":
            from screens.models import ModelsScreen

            return ModelsScreen(self.backend, state)
        if step == "plan":
            from screens.plan import PlanScreen

            return PlanScreen(self.backend, state)
        if step == "download":
            from screens.download import DownloadScreen

            return DownloadScreen(self.backend, state)
        if step == "launch":
            from screens.launch import LaunchScreen

            return LaunchScreen(self.backend, state)
        from screens.done import DoneScreen

        return DoneScreen(self.backend, state)

    # -- quitting -----------------------------------------------------------------------------
    def busy(self) -> bool:
        return any(w.group in BUSY_GROUPS and w.is_running for w in self.workers)

    def action_request_quit(self) -> None:
        if not self.busy():
            self.exit(0)
            return
        from screens.confirm import ConfirmScreen

        def answer(quit_now: bool | None) -> None:
            if quit_now:
                for screen in self.screen_stack:
                    stop = getattr(screen, "stop_work", None)
                    if stop is not None:
                        stop()
                self.exit(0)

        self.push_screen(
            ConfirmScreen("Something is still running. Quit anyway? (finished downloads are kept)"),
            answer,
        )

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        if self.step != STEPS[0]:
            yield SystemCommand("Back", "Go back one step", lambda: screen.run_action("back"))
        yield SystemCommand("Continue", "Go on to the next step", lambda: screen.run_action("next"))


def _apply(step: str, state: WizardState, result: Any) -> WizardState:
    """Fold a step's answer into the state."""
    if step == "machine":
        inventory, checks, spec = result
        return state.with_(inventory=inventory, checks=tuple(checks), spec=spec)
    if step == "models":
        return state.with_(choices=tuple(result))
    if step == "plan":
        choices, plan = result
        return state.with_(choices=tuple(choices), plan=plan)
    if step == "download":
        return state
    if step == "launch":
        return state.with_(endpoints=result)
    return state


def build_app(backend: WizardService, args: argparse.Namespace | None = None) -> ModelWizApp:
    return ModelWizApp(backend, args)


def run_app(args: argparse.Namespace) -> int:
    from wizard.core_service import CoreService

    app = build_app(CoreService(spec=getattr(args, "gpus", None)), args)
    app.run()
    return app.return_code or 0
