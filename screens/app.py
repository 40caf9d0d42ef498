"""ModelWizApp: the wizard's one flow worker walks the steps (in the order and with the Back rules
of `wizard.wizard_flow`); each screen returns a typed answer that `wizard_flow.fold` adds to the
state.

`build_app(service, args)` is the factory shared by `run_app` (the console script) and the tests.
Nothing heavy is imported here: the core's Hub/podman/protobuf modules load in workers, after the
first frame is painted.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait
from pathlib import PurePath
from typing import Any, ClassVar

from textual import work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Static

from screens.step import StepScreen
from wizard.errors import ModelwizError
from wizard.service import ServerView, WizardService
from wizard.wizard_flow import (
    STEPS,
    HomeResult,
    Step,
    advance,
    after_home,
    exit_summary,
    first_step,
    goes_home,
    opening,
    opens_home,
    step_before,
)
from wizard.wizard_state import WizardState

# Worker groups that mean "something is running that quitting would interrupt".
BUSY_GROUPS = frozenset({"download", "launch"})
# How long the flow waits for the first look (repository, GPUs) before the splash is painted.
SPLASH_AFTER_S = 0.1
QUIT_QUESTION = "Quit modelwiz?"
QUIT_WHILE_BUSY = (
    "Something is still running. Quit anyway? Finished files are kept, and running modelwiz again"
    " picks up where it stopped."
)


def first_look(service: WizardService, state: WizardState) -> WizardState:
    """`wizard_flow.opening`, and on a first run the GPUs too, so that the machine step shows them
    in its first frame (it reads them again, and says why when they cannot be read)."""
    state = opening(service, state)
    if not opens_home(state) and state.inventory is None:
        with contextlib.suppress(ModelwizError):
            state = state.with_(inventory=service.load_inventory(state.spec))
    return state


class ModelWizApp(App[str]):
    """Exits with the summary to print on the normal screen (`run_app` prints it)."""

    # The first screens' rules load with the app's: a screen's own CSS_PATH, read when the screen
    # is pushed, makes Textual parse the whole stylesheet again before that screen's first frame.
    CSS_PATH: ClassVar[list[str | PurePath]] = ["app.tcss", "machine.tcss", "home.tcss"]
    TITLE = "modelwiz"
    SUB_TITLE = "GPU workstation → Triton + vLLM"
    # Ctrl-C and Ctrl-Q quit from anywhere (priority: before any widget, an Input's copy included);
    # q is an ordinary binding, so a focused Input types it instead (`check_action` hides it then).
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("q", "quit_key", "Quit"),
        Binding("ctrl+q", "request_quit", "Quit", show=False, priority=True),
        Binding("ctrl+c", "request_quit", "Quit", show=False, priority=True),
        Binding("ctrl+l", "log_in", "Log in to Hugging Face", show=False),
    ]

    def __init__(self, service: WizardService, args: argparse.Namespace | None = None) -> None:
        super().__init__()
        self.service = service
        self.args = args
        self.state = WizardState(spec=getattr(args, "gpus", None) or service.spec)
        self.step: Step = STEPS[0]
        self.server: ServerView | None = None  # the home screen's last look at the server
        self._first_look: Future[WizardState]  # started on load (`on_load`)

    def compose(self) -> ComposeResult:
        # Seen only while the repository and the GPUs are read (the first step is usually pushed
        # before the first frame), so it carries no header or footer to build and style.
        yield Static("Starting…", id="splash")

    def on_load(self) -> None:
        # The first look starts before the terminal is set up, in a thread: the repository and the
        # GPUs are read while Textual starts.
        pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="first-look")
        self._first_look = pool.submit(first_look, self.service, self.state)
        pool.shutdown(wait=False)

    def on_mount(self) -> None:
        self.run_flow()

    # -- the flow -----------------------------------------------------------------------------
    @work(exclusive=True, group="flow", exit_on_error=True)
    async def run_flow(self) -> None:
        state, look = self.state, self._first_look
        # The first frame is the first step (or the home screen) when the look is quick: the loop
        # waits for it a moment before anything is painted; the splash shows only when it is slow.
        wait([look], timeout=SPLASH_AFTER_S)
        try:
            state = look.result() if look.done() else await asyncio.wrap_future(look)
        except Exception as error:  # noqa: BLE001 - an unreadable repository is shown, not fatal
            self.notify(f"could not read the model repository: {error}", severity="warning")
        if not opens_home(state):
            state, home = await self._steps(state, first_step(state), entry=None)
            if not home and state.launch:  # the steps ended (Done): leave with the summary
                self.leave(state)
                return
            # Back to the home screen, or "download only": the models are in the repository,
            # and the home screen launches them once what blocked the launch is fixed.
            state = await self._reread(state)
        while True:
            self.state = state
            result = await self.push_screen_wait(self._home(state))
            state, step = after_home(state, result)
            if step is None:
                break
            state, _home = await self._steps(state, step, entry=step)
            state = await self._reread(state)
        self.leave(state)

    async def _reread(self, state: WizardState) -> WizardState:
        return state.with_(existing=tuple(await asyncio.to_thread(self.service.existing_models)))

    async def _steps(self, state: WizardState, step: Step | None, *, entry: Step | None) -> tuple[WizardState, bool]:
        """The guided steps from `step` until the last one answers; True when Back leaves them
        for the home screen (`wizard_flow.goes_home`)."""
        while step is not None:
            self.state = state
            self.step = step
            answer = await self.push_screen_wait(self._screen_for(step, state))
            if goes_home(entry, step, answer):
                self.state = state
                return state, True
            state, step = advance(state, step, answer)
        self.state = state
        return state, False

    def _home(self, state: WizardState) -> Screen[HomeResult]:
        from screens.home import HomeScreen

        return HomeScreen(self.service, state)

    def leave(self, state: WizardState) -> None:
        self.state = state
        self.exit(exit_summary(self.server, state.endpoints))

    def _screen_for(self, step: Step, state: WizardState) -> StepScreen[Any]:
        screen: type[StepScreen[Any]]
        if step == "machine":
            from screens.machine import MachineScreen as screen
        elif step == "models":
            from screens.models import ModelsScreen as screen
        elif step == "plan":
            from screens.plan import PlanScreen as screen
        elif step == "download":
            from screens.download import DownloadScreen as screen
        elif step == "launch":
            from screens.launch import LaunchScreen as screen
        else:
            from screens.done import DoneScreen as screen
        return screen(self.service, state)

    # -- quitting -----------------------------------------------------------------------------
    def busy(self) -> bool:
        return any(w.group in BUSY_GROUPS and w.is_running for w in self.workers)

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        focused = self.focused
        if action == "quit_key" and focused is not None and focused.check_consume_key("q", "q"):
            return None  # shown disabled: the focused field types it (Ctrl-C / Ctrl-Q still quit)
        return True

    def action_quit_key(self) -> None:
        self.action_request_quit()

    def action_request_quit(self, *, ask: bool = False) -> None:
        """Quit; ask first when work is running (what is done is kept) or when `ask` says so."""
        from screens.confirm import ConfirmScreen

        if isinstance(self.screen, ConfirmScreen):
            return  # the question is already on screen
        busy = self.busy()
        if not busy and not ask:
            self.leave(self.state)
            return

        def answer(quit_now: bool | None) -> None:
            if quit_now:
                for screen in self.screen_stack:
                    stop = getattr(screen, "stop_work", None)
                    if stop is not None:
                        stop()
                self.leave(self.state)

        question = QUIT_WHILE_BUSY if busy else QUIT_QUESTION
        self.push_screen(ConfirmScreen(question), answer)

    def action_log_in(self) -> None:
        """`modelwiz login` without leaving: a password field, saved through the core."""
        from screens.login import LoginScreen

        if isinstance(self.screen, LoginScreen):
            return

        def logged_in(user: str | None) -> None:
            if user:
                self.notify(f"Logged in to Hugging Face as {user}; gated models can be picked now")

        self.push_screen(LoginScreen(self.service), logged_in)

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("Log in to Hugging Face", "Save a Hugging Face token (Ctrl+L)", self.action_log_in)
        home_commands = getattr(screen, "home_commands", None)
        if home_commands is not None:
            yield from home_commands()
            return
        if step_before(self.step) is not None:
            yield SystemCommand("Back", "Go back one step", lambda: screen.run_action("back"))
        yield SystemCommand("Continue", "Go on to the next step", lambda: screen.run_action("next"))


def build_app(service: WizardService, args: argparse.Namespace | None = None) -> ModelWizApp:
    return ModelWizApp(service, args)


def run_app(args: argparse.Namespace) -> int:
    from wizard.core_service import CoreService

    app = build_app(CoreService(spec=getattr(args, "gpus", None)), args)
    # What the imports built lives as long as the process: out of the collector's way, the first
    # frame's many small objects no longer set off full collections that walk it all again.
    gc.freeze()
    summary = app.run()
    if summary and not app.return_code:
        print(summary, end="")  # on the normal screen, after the full-screen UI is gone
    return app.return_code or 0
