"""What every wizard step shares: the step bar, Esc = back, ctrl+n = continue, errors as text.

A step is a `Screen` that returns its typed answer (`wizard.wizard_flow.MachineResult`, ...) with
`dismiss(result)`; `BACK` means "go back one step". The app's flow worker decides what comes next
(screens never push the next step), by the rules in `wizard.wizard_flow`.
"""

from __future__ import annotations

from typing import ClassVar, Generic, TypeVar

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.screen import Screen
from textual.widgets import Footer, Header, Static

from wizard.errors import ModelwizError
from wizard.service import WizardService
from wizard.wizard_flow import BACK, STEP_TITLES, STEPS, Back, Step, step_before
from wizard.wizard_state import WizardState

ResultT = TypeVar("ResultT")


def error_text(error: BaseException) -> Text:
    """A failure as the user should read it: what happened, then the fix."""
    text = Text()
    if isinstance(error, ModelwizError):
        text.append(error.message, style="bold")
        if error.hint:
            text.append("\nfix: ", style="bold")
            text.append(error.hint)
    else:
        text.append(f"unexpected {type(error).__name__}: {error}", style="bold")
        text.append("\nfix: ", style="bold")
        text.append("run `modelwiz --debug` for details, and report it")
    return text


class StepBar(Static):
    """`Machine › Models › Plan › ...` with the current step highlighted."""

    DEFAULT_CSS = """
    StepBar {
        height: 1;
        padding: 0 1;
        background: $panel;
        color: $text-muted;
    }
    """

    def __init__(self, step: Step) -> None:
        super().__init__()
        self.step = step

    def render(self) -> Text:
        text = Text(no_wrap=True, overflow="ellipsis")
        current = STEPS.index(self.step)
        for i, name in enumerate(STEPS):
            if i:
                text.append(" › ", style="dim")
            title = f"{i + 1} {STEP_TITLES[name]}"
            if i == current:
                text.append(title, style="bold reverse")
            elif i < current:
                text.append(title)
            else:
                text.append(title, style="dim")
        return text


class StepScreen(Screen[ResultT | Back], Generic[ResultT]):
    """Base of the six wizard steps: each returns its `ResultT`, or `BACK`."""

    STEP: Step = "machine"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("escape", "back", "Back"),
        Binding("ctrl+n", "next", "Continue"),
    ]

    def compose_chrome(self) -> ComposeResult:
        yield Header()
        yield StepBar(self.STEP)

    def compose_footer(self) -> ComposeResult:
        yield Footer()

    def show_problem(self, text: Text) -> None:
        """Show why the step stopped, in the screen's `#problem` box."""
        problem = self.query_one("#problem", Static)
        problem.update(text)
        problem.display = True
        problem.add_class("error-box")

    def __init__(self, service: WizardService, state: WizardState) -> None:
        super().__init__()
        self.service = service
        self.state = state

    def action_back(self) -> None:
        if step_before(self.STEP) is None:
            self.app.action_request_quit(ask=True)  # type: ignore[attr-defined]
            return
        self.dismiss(BACK)

    def action_next(self) -> None:  # each step says when it can go on
        pass
