"""Step 2: pick models. The Hub is searched as you type; an empty search shows a shortlist of
popular models, each marked by whether it fits these GPUs; gated models say so in the list, and a
model you cannot access is refused with the reason before it is picked. On a re-run the models
already in the repository are listed, and this is where the wizard opens."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.timer import Timer
from textual.widgets import Button, Input, OptionList, Static
from textual.widgets.option_list import Option

from screens.machine import LOGIN_HERE
from screens.messages import DetailsLoaded, SearchResults, StepFailed
from screens.step import StepScreen, error_text
from wizard.errors import ModelwizError
from wizard.service import Fit, ModelCandidate, ModelChoice, WizardService
from wizard.units import format_bytes
from wizard.wizard_flow import ModelsResult, already_picked, existing_line, pick
from wizard.wizard_state import WizardState

FIT_MARKS: dict[Fit, tuple[str, str]] = {
    "fits": ("✔", "green"),
    "split": ("◐", "yellow"),
    "no": ("✖", "red"),
    "unknown": ("?", "dim"),
}
SEARCH_DELAY_S = 0.3


def _count(n: int | None) -> str:
    if n is None:
        return ""
    for unit, size in (("B", 10**9), ("M", 10**6), ("k", 10**3)):
        if n >= size:
            return f"{n / size:.1f}{unit}"
    return str(n)


def candidate_line(c: ModelCandidate) -> Text:
    mark, colour = FIT_MARKS[c.fit]
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{mark} ", style=f"bold {colour}")
    text.append(c.repo_id, style="bold")
    if c.gated:
        text.append(" gated", style="bold yellow")
    details = []
    if c.weights_bytes:
        details.append(format_bytes(c.weights_bytes))
    if c.downloads is not None:
        details.append(f"↓{_count(c.downloads)}")
    if c.fit_note:
        details.append(c.fit_note)
    if details:
        text.append("  " + " · ".join(details), style="dim")
    return text


class ModelsScreen(StepScreen[ModelsResult]):
    STEP = "models"
    CSS_PATH = "models.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("delete", "remove_pick", "Remove pick", show=False)]

    def __init__(self, service: WizardService, state: WizardState) -> None:
        super().__init__(service, state)
        self.choices: list[ModelChoice] = list(state.choices)
        self.results: list[ModelCandidate] = []
        self._timer: Timer | None = None
        self.pending: str | None = None  # repo being looked up

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with Vertical(id="body"):
            yield Input(placeholder="Search Hugging Face models (e.g. qwen 7b instruct)", id="search")
            yield Static("Popular models", id="results-title", classes="section-title")
            yield OptionList(id="results")
            yield Static("", id="status", classes="hint")
            with Horizontal(id="lists"):
                with Vertical(id="picked-box"):
                    yield Static("To add", classes="section-title")
                    yield OptionList(id="picked")
                with Vertical(id="existing-box"):
                    yield Static("In the repository", classes="section-title")
                    yield Static(id="existing")
        with Horizontal(classes="actions"):
            yield Button("Back", id="back")
            yield Button("Plan", id="continue", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        existing = self.query_one("#existing", Static)
        if self.state.existing:
            existing.update(Text("\n").join(Text(f"● {existing_line(e)}") for e in self.state.existing))
        else:
            self.query_one("#existing-box").display = False
        self._refresh_picks()
        self.query_one("#search", Input).focus()
        self.post_message(SearchResults("", self.service.catalog_models(self.state.inventory)))  # until the Hub answers
        self.search("")

    # -- searching ----------------------------------------------------------------------------
    @on(Input.Changed, "#search")
    def query_changed(self, event: Input.Changed) -> None:
        if self._timer is not None:
            self._timer.stop()
        query = event.value.strip()
        self._timer = self.set_timer(SEARCH_DELAY_S, lambda: self.search(query))

    @on(Input.Submitted, "#search")
    def query_submitted(self) -> None:
        results = self.query_one("#results", OptionList)
        if results.option_count:
            results.focus()
            results.highlighted = 0

    @work(thread=True, exclusive=True, group="search", exit_on_error=False, description="Searching the Hub")
    def search(self, query: str) -> None:
        try:
            inventory = self.state.inventory
            found = self.service.search_models(query, inventory) if query else self.service.popular_models(inventory)
        except Exception as error:  # noqa: BLE001 - shown in the status line
            self.post_message(StepFailed(error))
            return
        self.post_message(SearchResults(query, found))

    def on_search_results(self, message: SearchResults) -> None:
        current = self.query_one("#search", Input).value.strip()
        if message.query != current:
            return  # an older answer
        self.results = message.results
        title = f"Results for “{message.query}”" if message.query else "Popular models"
        self.query_one("#results-title", Static).update(title)
        results = self.query_one("#results", OptionList)
        results.clear_options()
        results.add_options(Option(candidate_line(c), id=c.repo_id) for c in message.results)
        if not message.results:
            self._status(Text(f"No models match “{message.query}”.", style="italic"))
        else:
            self._status(Text("Enter picks the highlighted model; ✔ fits one GPU, ◐ needs several, ✖ too big."))

    # -- picking ------------------------------------------------------------------------------
    @on(OptionList.OptionSelected, "#results")
    def result_selected(self, event: OptionList.OptionSelected) -> None:
        repo_id = event.option.id or ""
        if already_picked(repo_id, self.choices):
            self.notify(f"{repo_id} is already picked")
            return
        self.pending = repo_id
        self._status(Text(f"Looking up {repo_id}…"))
        self.lookup(repo_id)

    @work(thread=True, exclusive=True, group="lookup", exit_on_error=False, description="Looking up a model")
    def lookup(self, repo_id: str) -> None:
        try:
            details = self.service.model_details(repo_id)
        except Exception as error:  # noqa: BLE001
            self.post_message(StepFailed(error))
            return
        self.post_message(DetailsLoaded(details))

    def on_details_loaded(self, message: DetailsLoaded) -> None:
        details = message.details
        self.pending = None
        try:
            choice = pick(details, self.choices)
        except ModelwizError as error:
            status = Text(error.message, style="bold red")
            if details.access == "needs-login":
                status.append(f" ({LOGIN_HERE}, then pick it again)", style="bold")
            self._status(status)
            self.notify(error.message, severity="error", title="Cannot pick this model")
            return
        self.choices.append(choice)
        self._refresh_picks()
        self._status(Text(f"Added {details.repo_id}; the plan names it."))

    def on_step_failed(self, message: StepFailed) -> None:
        self.pending = None
        self._status(error_text(message.error))

    @on(OptionList.OptionSelected, "#picked")
    def action_remove_pick(self) -> None:
        picked = self.query_one("#picked", OptionList)
        if picked.highlighted is None or not self.choices:
            return
        removed = self.choices.pop(picked.highlighted)
        self._refresh_picks()
        self.notify(f"Removed {removed.repo_id}")

    def _refresh_picks(self) -> None:
        picked = self.query_one("#picked", OptionList)
        picked.clear_options()
        picked.add_options(Option(Text(f"+ {c.repo_id}"), id=c.repo_id) for c in self.choices)
        if not self.choices:
            picked.add_option(Option(Text("nothing yet: pick from the list above", style="dim"), disabled=True))

    def _status(self, text: Text) -> None:
        self.query_one("#status", Static).update(text)

    # -- leaving ------------------------------------------------------------------------------
    @on(Button.Pressed, "#continue")
    def action_next(self) -> None:
        if not self.choices and not self.state.existing:
            self.notify("Pick at least one model", severity="warning")
            return
        self.dismiss(ModelsResult(tuple(self.choices)))

    @on(Button.Pressed, "#back")
    def back_pressed(self) -> None:
        self.action_back()
