"""Step 5: write the model repository, pull the image, start Triton; the server's log streams and
each model shows its state until it is ready (or the reason it failed)."""

from __future__ import annotations

import threading

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Log, ProgressBar, Static

from screens.messages import LaunchFinished, LaunchProgress, StepFailed
from screens.step import StepScreen, error_text
from wizard.service import LogLine, ModelState, PullProgress, ServingState, WizardService
from wizard.units import format_bytes
from wizard.wizard_flow import BACK, LaunchResult, write_and_launch
from wizard.wizard_state import WizardState

STATE_MARKS: dict[ServingState, tuple[str, str]] = {
    "waiting": ("·", "dim"),
    "loading": ("◌", "yellow"),
    "ready": ("✔", "green"),
    "failed": ("✖", "red"),
}


NOT_STARTED = "not started: the launch stopped first"
IMAGE_CHECKING = "checking the image…"
IMAGE_PRESENT = "the image is on this machine (nothing to pull)"


def states_text(states: dict[str, ModelState], *, stopped: bool = False) -> Text:
    """One line per model; once the launch has `stopped`, a model never reached says so instead
    of "waiting"."""
    text = Text()
    for name, st in states.items():
        mark, colour = STATE_MARKS[st.state]
        if text:
            text.append("\n")
        text.append(f"{mark} ", style=f"bold {colour}")
        text.append(name, style="bold")
        label = NOT_STARTED if stopped and st.state == "waiting" else st.state
        text.append(f"  {label}", style=colour)
        if st.detail:
            text.append(f"  {st.detail}", style="dim")
    return text


class LaunchScreen(StepScreen[LaunchResult]):
    STEP = "launch"
    CSS_PATH = "launch.tcss"

    def __init__(self, service: WizardService, state: WizardState) -> None:
        super().__init__(service, state)
        self.cancel_event = threading.Event()
        self.states: dict[str, ModelState] = {}
        self.running = False
        self.pulled = False

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with VerticalScroll(id="body"):
            yield Static("Image", classes="section-title")
            yield ProgressBar(id="pull", show_eta=False)
            yield Static("", id="pull-stats", classes="hint")
            yield Static("Models", classes="section-title")
            yield Static(id="states")
            yield Static("", id="problem")
            yield Static("Server log", classes="section-title")
            yield Log(id="log", max_lines=2000)
        with Horizontal(classes="actions"):
            yield Button("Back to plan", id="back")
            yield Button("Retry", id="retry", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        plan = self.state.plan
        names = [m.name for m in plan.models] if plan else []
        self.states = {n: ModelState(n, "waiting") for n in names}
        self.query_one("#states", Static).update(states_text(self.states))
        self.start()

    def start(self) -> None:
        self.running = True
        self.pulled = False
        self.cancel_event = threading.Event()
        # No bar until a pull reports bytes: an indeterminate bar would pulse while nothing moves.
        self.query_one("#pull", ProgressBar).display = False
        self.query_one("#pull-stats", Static).update(IMAGE_CHECKING)
        self.query_one("#problem").display = False
        self.query_one("#retry").display = False
        self.query_one("#back").display = False
        self.run_launch()

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False, description="Launching Triton")
    def run_launch(self) -> None:
        try:
            self.post_message(LaunchProgress(LogLine("modelwiz: writing the model repository")))
            endpoints = write_and_launch(
                self.service,
                self.state,
                on_event=lambda event: self.post_message(LaunchProgress(event)),
                cancel=self.cancel_event,
            )
        except Exception as error:  # noqa: BLE001
            self.post_message(StepFailed(error))
            return
        self.post_message(LaunchFinished(endpoints))

    def stop_work(self) -> None:
        self.cancel_event.set()

    def on_launch_progress(self, message: LaunchProgress) -> None:
        event = message.event
        if isinstance(event, PullProgress):
            p = event.progress
            self.pulled = True
            bar = self.query_one("#pull", ProgressBar)
            bar.update(total=p.total_bytes, progress=p.done_bytes)
            bar.display = bool(p.total_bytes)
            note = f"{p.task} · {format_bytes(p.done_bytes)} / {format_bytes(p.total_bytes)}"
            if p.current:
                note += f" · {p.current}"
            self.query_one("#pull-stats", Static).update(Text(note, no_wrap=True, overflow="ellipsis"))
        elif isinstance(event, LogLine):
            self.query_one("#log", Log).write_line(event.text)
        elif isinstance(event, ModelState):
            self.states[event.name] = event
            self.query_one("#states", Static).update(states_text(self.states))
            if not self.pulled:  # the server runs: the image was already here
                self.query_one("#pull-stats", Static).update(IMAGE_PRESENT)

    def on_launch_finished(self, message: LaunchFinished) -> None:
        self.running = False
        self.dismiss(LaunchResult(message.endpoints))

    def on_step_failed(self, message: StepFailed) -> None:
        self.running = False
        self.query_one("#states", Static).update(states_text(self.states, stopped=True))
        if not self.pulled:
            self.query_one("#pull-stats", Static).update("")
        self.show_problem(error_text(message.error))
        self.query_one("#retry").display = True
        self.query_one("#back").display = True
        self.query_one("#retry", Button).focus()

    @on(Button.Pressed, "#retry")
    def retry(self) -> None:
        if not self.running:
            self.query_one("#log", Log).write_line("modelwiz: retrying")
            self.start()

    def action_back(self) -> None:
        if self.running:
            self.notify("The server is starting; wait for it, or press Ctrl+Q to quit", severity="warning")
            return
        self.dismiss(BACK)  # to the plan (wizard_flow.step_before): the downloads are done

    @on(Button.Pressed, "#back")
    def back_pressed(self) -> None:
        self.action_back()
