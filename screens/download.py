"""Step 4: download the picked models. Overall and per-file progress, rate and ETA. Cancel keeps
what is done; going on later resumes (huggingface_hub skips finished files). The disk is checked
before any byte moves."""

from __future__ import annotations

import threading
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.widgets import Button, Label, ProgressBar, Static

from screens.messages import DownloadFinished, DownloadProgress, StepFailed
from screens.step import StepScreen, error_text
from wizard.errors import Cancelled
from wizard.progress import ProgressEvent
from wizard.service import ModelChoice, WizardService
from wizard.units import format_bytes, format_duration, format_rate
from wizard.wizard_flow import DownloadResult, download_all
from wizard.wizard_state import WizardState


def progress_text(event: ProgressEvent) -> Text:
    text = Text(no_wrap=True, overflow="ellipsis")
    text.append(f"{format_bytes(event.done_bytes)} / {format_bytes(event.total_bytes)}")
    if event.rate_bytes_per_s:
        text.append(f" · {format_rate(event.rate_bytes_per_s)}")
    if event.eta_s is not None and not event.finished:
        text.append(f" · {format_duration(event.eta_s)} left")
    if event.files_total:
        text.append(f" · file {min(event.files_done + 1, event.files_total)}/{event.files_total}", style="dim")
    if event.finished:
        text.append(" · done", style="bold green")
    elif event.message:
        text.append(f" · {event.message}", style="dim")
    return text


WAITING = "waiting for the models before it"
DOWNLOADED_ONLY = (
    "Downloaded, and the model repository is written. Fix what the plan said stops the launch,"
    " then launch it from the home screen (l) or with `modelwiz up`."
)
NOT_STARTED = "not started"


class ModelDownload(Vertical):
    """One model: its bar, and the file being fetched."""

    def __init__(self, choice: ModelChoice, name: str | None, index: int) -> None:
        super().__init__(classes="model-download", id=f"dl-{index}")
        self.border_title = name or choice.repo_id
        self.border_subtitle = choice.repo_id
        self.last: ProgressEvent | None = None

    def compose(self) -> ComposeResult:
        # The bar appears with the first progress: an unknown total would pulse while nothing moves.
        yield ProgressBar(show_eta=False, classes="model-bar")
        yield Static(WAITING, classes="model-stats")
        with Horizontal(classes="file-row"):
            yield Label("", classes="file-name")
            yield ProgressBar(show_eta=False, show_percentage=False, classes="file-bar")

    def on_mount(self) -> None:
        self.query_one(".model-bar", ProgressBar).display = False
        self.query_one(".file-bar", ProgressBar).display = False

    def stopped(self) -> None:
        """The downloads stopped (cancel or failure): no stale rate, ETA or "waiting"."""
        event = self.last
        stats = self.query_one(".model-stats", Static)
        if event is None:
            stats.update(Text(NOT_STARTED, style="dim"))
        elif not event.finished:
            stats.update(Text(f"stopped: {format_bytes(event.done_bytes)} of {format_bytes(event.total_bytes)} kept"))
        self.query_one(".file-bar", ProgressBar).display = False

    def show(self, event: ProgressEvent) -> None:
        self.last = event
        bar = self.query_one(".model-bar", ProgressBar)
        bar.update(total=event.total_bytes, progress=event.done_bytes)
        bar.display = True
        self.query_one(".model-stats", Static).update(progress_text(event))
        self.query_one(".file-name", Label).update(event.current or "")
        file_bar = self.query_one(".file-bar", ProgressBar)
        if event.current_total_bytes:
            file_bar.update(total=event.current_total_bytes, progress=event.current_done_bytes or 0)
        file_bar.display = bool(event.current_total_bytes) and not event.finished


class DownloadScreen(StepScreen[DownloadResult]):
    STEP = "download"
    CSS_PATH = "download.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("c", "cancel", "Cancel download")]

    def __init__(self, service: WizardService, state: WizardState) -> None:
        super().__init__(service, state)
        self.choices = state.choices
        self.cancel_event = threading.Event()
        self.totals: dict[int, tuple[int, int]] = {}
        self.running = False

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with VerticalScroll(id="body"):
            yield Static("Overall", classes="section-title")
            yield ProgressBar(id="overall", show_eta=False)
            yield Static("", id="overall-stats", classes="hint")
            for i, c in enumerate(self.choices):
                yield ModelDownload(c, self.state.plan.name_of(c) if self.state.plan else c.name, i)
            yield Static("", id="problem")
        with Horizontal(classes="actions"):
            yield Button("Back", id="back")
            yield Button("Cancel", id="cancel", variant="warning")
            yield Button("Resume", id="resume", variant="primary")
            yield Button("Finish", id="finish", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        # The total is known before a byte moves (no pulsing bar while the first file starts).
        self.query_one("#overall", ProgressBar).update(total=self.overall_total() or None, progress=0)
        self.query_one("#problem").display = False
        self.query_one("#finish").display = False
        self.start()

    def start(self) -> None:
        self.cancel_event = threading.Event()
        self.running = True
        self.query_one("#resume").display = False
        self.query_one("#cancel").display = True
        self.query_one("#problem").display = False
        if not self.choices:
            self.post_message(DownloadFinished(False))
            return
        self.fetch()

    @work(thread=True, exclusive=True, group="download", exit_on_error=False, description="Downloading models")
    def fetch(self) -> None:
        try:
            download_all(
                self.service,
                self.state,
                on_progress=lambda index, event: self.post_message(DownloadProgress(index, event)),
                cancel=self.cancel_event,
            )
        except Cancelled:
            self.post_message(DownloadFinished(True))
            return
        except Exception as error:  # noqa: BLE001
            self.post_message(StepFailed(error))
            return
        self.post_message(DownloadFinished(False))

    def stop_work(self) -> None:
        self.cancel_event.set()

    # -- handlers -----------------------------------------------------------------------------
    def on_download_progress(self, message: DownloadProgress) -> None:
        event = message.event
        self.query_one(f"#dl-{message.index}", ModelDownload).show(event)
        self.totals[message.index] = (event.done_bytes, event.total_bytes or 0)
        done = sum(d for d, _ in self.totals.values())
        total = self.overall_total()
        self.query_one("#overall", ProgressBar).update(total=total or None, progress=done)
        finished = sum(1 for i in self.totals if i < message.index) + (1 if event.finished else 0)
        stats = Text(f"{finished} of {len(self.choices)} models · {format_bytes(done)} fetched so far")
        if event.rate_bytes_per_s:
            stats.append(f" · {format_rate(event.rate_bytes_per_s)}")
        self.query_one("#overall-stats", Static).update(stats)

    def overall_total(self) -> int:
        """Bytes of all picks: what each started download reported, the plan's weights for the
        rest (so the overall bar never goes back when the next model starts)."""
        total = 0
        for i, choice in enumerate(self.choices):
            if i in self.totals:
                total += self.totals[i][1]
                continue
            plan = self.state.plan
            model = plan.model(plan.name_of(choice) or "") if plan is not None else None
            total += model.weights_bytes if model is not None else 0
        return total

    def on_download_finished(self, message: DownloadFinished) -> None:
        self.running = False
        if message.cancelled:
            self._stopped(
                Text(
                    "Cancelled. Finished files are kept; Resume (or running modelwiz again) picks up where it stopped.",
                    style="bold yellow",
                )
            )
            return
        if not self.state.launch:  # download only: say what is next, leave when the user has read it
            problem = self.query_one("#problem", Static)
            problem.update(Text(DOWNLOADED_ONLY, style="bold green"))
            problem.display = True
            self.query_one("#cancel").display = False
            self.query_one("#finish").display = True
            self.query_one("#finish", Button).focus()
            return
        self.dismiss(DownloadResult())

    @on(Button.Pressed, "#finish")
    def finish(self) -> None:
        if not self.running:
            self.dismiss(DownloadResult())

    def on_step_failed(self, message: StepFailed) -> None:
        self.running = False
        self._stopped(error_text(message.error))

    def _stopped(self, text: Text) -> None:
        for card in self.query(ModelDownload):
            card.stopped()
        self.show_problem(text)
        self.query_one("#cancel").display = False
        self.query_one("#resume").display = True
        self.query_one("#resume", Button).focus()

    # -- actions ------------------------------------------------------------------------------
    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        if self.running:
            self.cancel_event.set()
            self.notify("Cancelling after the current chunk…")

    @on(Button.Pressed, "#resume")
    def resume(self) -> None:
        if not self.running:
            self.start()

    def action_back(self) -> None:
        if self.running:
            self.notify("Cancel the download first (c)", severity="warning")
            return
        super().action_back()

    @on(Button.Pressed, "#back")
    def back_pressed(self) -> None:
        self.action_back()
