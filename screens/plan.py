"""Step 3: the plan as a picture. Per GPU a bar of its memory (weights, KV cache, overhead, other
processes, free); per model its settings. Context length and concurrency are editable, the plan is
recomputed as you type, and a model that stops fitting says why."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Static

from screens.messages import PlanComputed, StepFailed
from screens.step import StepScreen, error_text
from screens.widgets.memory_bar import MemoryBar, MemoryLegend
from wizard.errors import ModelwizError
from wizard.plan_render import KEEP_FREE_BYTES, Tone, model_card, suggested_context
from wizard.plan_types import ModelPlan
from wizard.service import Check, CheckStatus, ModelChoice, PlanView, WizardService
from wizard.units import format_bytes
from wizard.wizard_flow import (
    PlanResult,
    can_go_on,
    launch_blocked,
    parse_concurrency,
    parse_context_length,
    plan_for,
    toggled_reserve,
    with_name,
    with_settings,
)
from wizard.wizard_state import WizardState

REPLAN_DELAY_S = 0.25
DOWNLOAD_AND_LAUNCH = "Download & launch"
DOWNLOAD_ONLY = "Download only"
CHECK_MARKS: dict[CheckStatus, tuple[str, str]] = {"ok": ("✔", "green"), "warn": ("!", "yellow"), "fail": ("✖", "red")}


def readiness_text(rows: tuple[Check, ...]) -> Text:
    """What the launch needs, a line each, with the fix under what would stop it."""
    text = Text()
    for row in rows:
        mark, colour = CHECK_MARKS[row.status]
        if text:
            text.append("\n")
        text.append(f"{mark} ", style=f"bold {colour}")
        text.append(f"{row.title}: ", style="bold")
        text.append(row.summary)
        if row.hint and not row.ok:
            text.append("\n  fix: ", style="bold")
            text.append(row.hint)
    if launch_blocked(rows):
        text.append(
            f"\nThe launch would stop here: fix it and press Check again, or choose {DOWNLOAD_ONLY}"
            " (then `modelwiz up` launches).",
            style="bold yellow",
        )
    return text


TONE_STYLES: dict[Tone, str] = {
    "good": "bold green",
    "bad": "bold red",
    "advice": "yellow",
    "muted": "dim",
    "plain": "",
}


def settings_text(plan: ModelPlan, *, shortened_from: int | None = None) -> Text:
    """One model's plan (`wizard.plan_render.model_card`), coloured."""
    text = Text()
    for piece, tone in model_card(plan, shortened_from=shortened_from):
        text.append(piece, style=TONE_STYLES[tone])
    return text


class ModelCard(Vertical):
    """A model's name, its editable settings and what the planner made of them."""

    def __init__(self, choice: ModelChoice | None, name: str | None, source: str, *, index: int) -> None:
        super().__init__(classes="model-card", id=f"card-{index}")
        self.choice = choice
        self.index = index
        self.border_title = name or source
        self.border_subtitle = source if choice is not None else f"{source} · in the repository"

    def compose(self) -> ComposeResult:
        if self.choice is not None:
            with Horizontal(classes="settings"):
                yield Label("context")
                yield Input(
                    str(self.choice.max_model_len or ""),
                    placeholder="auto",
                    id=f"len-{self.index}",
                    classes="len",
                    compact=True,
                )
                yield Label("concurrency")
                yield Input(str(self.choice.min_concurrency), id=f"conc-{self.index}", classes="conc", compact=True)
                yield Label("name")
                yield Input(
                    self.choice.name or "", placeholder="auto", id=f"name-{self.index}", classes="name", compact=True
                )
        yield Static(classes="verdict")


class PlanScreen(StepScreen[PlanResult]):
    """The plan, and the planner's suggestions as one-key actions: `u` uses the context length the
    planner says fits (for the first model that does not), `k` keeps 20 GiB free on each GPU for
    models added later (or, pressed again, gives that memory back to these models)."""

    STEP = "plan"
    CSS_PATH = "plan.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("u", "use_context", "Use context that fits"),
        Binding("k", "toggle_reserve", "Keep/fill memory"),
    ]

    def __init__(self, service: WizardService, state: WizardState) -> None:
        super().__init__(service, state)
        self.choices: list[ModelChoice] = list(state.choices)
        self.plan: PlanView | None = None
        self.reserve_bytes = state.reserve_bytes
        self.longest_auto: dict[int, int] = {}  # card -> the longest context planned while on "auto"
        self.fix: tuple[int, int] | None = None  # (card, context length) the `u` action applies
        self.readiness: tuple[Check, ...] = ()
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with VerticalScroll(id="body"):
            yield Static("Memory per GPU", classes="section-title")
            yield Vertical(id="bars")
            yield MemoryLegend()
            with Horizontal(id="suggest"):
                yield Button("", id="use-len", compact=True, variant="warning")
                yield Button(self._reserve_label(), id="reserve", compact=True)
            yield Static("Models", classes="section-title")
            for e in self.state.existing:
                yield ModelCard(None, e.name, e.source, index=-1 - self.state.existing.index(e))
            for i, c in enumerate(self.choices):
                yield ModelCard(c, c.name, c.repo_id, index=i)
            yield Static("Before launch", classes="section-title")
            yield Static(Text("checking…", style="dim"), id="readiness")
            yield Static(id="problem", classes="hint")
        with Horizontal(classes="actions"):
            yield Button("Back", id="back")
            yield Button("Check again", id="recheck")
            yield Button(DOWNLOAD_AND_LAUNCH, id="continue", variant="primary", disabled=True)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#recheck").display = False
        self.replan()

    # -- editing ------------------------------------------------------------------------------
    @on(Input.Changed)
    def setting_changed(self, event: Input.Changed) -> None:
        card = next(a for a in event.input.ancestors if isinstance(a, ModelCard))
        try:
            length = parse_context_length(self.query_one(f"#len-{card.index}", Input).value)
            conc = parse_concurrency(self.query_one(f"#conc-{card.index}", Input).value)
        except ModelwizError as error:
            card.query_one(".verdict", Static).update(Text(f"✖ {error.one_line()}", style="bold red"))
            self.query_one("#continue", Button).disabled = True
            return
        name = self.query_one(f"#name-{card.index}", Input).value
        choices = with_settings(self.choices, card.index, max_model_len=length, min_concurrency=conc)
        choices = with_name(choices, card.index, name)
        if choices == tuple(self.choices):
            return
        self.choices = list(choices)
        card.choice = choices[card.index]
        self.query_one("#continue", Button).disabled = True
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(REPLAN_DELAY_S, self.replan)

    def _reserve_label(self) -> str:
        if self.reserve_bytes:
            return "k: fill free memory (give the kept room to these models)"
        return f"k: keep {format_bytes(KEEP_FREE_BYTES)} per GPU for later models"

    def action_toggle_reserve(self) -> None:
        self.reserve_bytes = toggled_reserve(self.reserve_bytes)
        self.query_one("#reserve", Button).label = self._reserve_label()
        self.query_one("#continue", Button).disabled = True
        self.replan()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action == "use_context":
            return self.fix is not None  # in the footer only when there is a context to use
        return True

    def action_use_context(self) -> None:
        if self.fix is None:
            self.notify("Every model fits; nothing to shorten")
            return
        index, length = self.fix
        self.query_one(f"#len-{index}", Input).value = str(length)  # replans as if typed

    @on(Button.Pressed, "#reserve")
    def reserve_pressed(self) -> None:
        self.action_toggle_reserve()

    @on(Button.Pressed, "#use-len")
    def use_len_pressed(self) -> None:
        self.action_use_context()

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False, description="Planning")
    def replan(self) -> None:
        choices = tuple(self.choices)
        try:
            plan = plan_for(self.service, self.state, choices, reserve_bytes=self.reserve_bytes)
        except Exception as error:  # noqa: BLE001
            self.post_message(StepFailed(error))
            return
        self.post_message(PlanComputed(plan))

    # -- showing ------------------------------------------------------------------------------
    def on_plan_computed(self, message: PlanComputed) -> None:
        self.plan = plan = message.plan
        bars = self.query_one("#bars", Vertical)
        existing = {bar.memory.device: bar for bar in bars.query(MemoryBar)}
        if set(existing) == {d.device for d in plan.devices}:
            for d in plan.devices:
                existing[d.device].update(d)
        else:
            bars.remove_children()
            bars.mount_all(MemoryBar(d) for d in plan.devices)
        picked = {plan.name_of(c) for c in self.choices}
        self.fix = None
        for card in self.query(ModelCard):
            if card.choice is None:  # in the repository: hidden when a pick resumes it
                name = str(card.border_title)
                card.display = name not in picked
            else:
                name = plan.name_of(card.choice) or card.choice.repo_id
                card.border_title = name
                self.query_one(f"#name-{card.index}", Input).placeholder = name
            model = plan.model(name)
            verdict = card.query_one(".verdict", Static)
            if model is None:
                verdict.update(Text("not planned", style="dim"))
                continue
            shortened_from = None
            if card.choice is not None and card.choice.max_model_len is None and model.fits:
                longest = max(self.longest_auto.get(card.index, 0), model.max_model_len)
                self.longest_auto[card.index] = longest
                shortened_from = longest if longest > model.max_model_len else None
            verdict.update(settings_text(model, shortened_from=shortened_from))
            card.set_class(not model.fits, "misfit")
            length = suggested_context(model) if card.choice is not None and not model.fits else None
            if length is not None and self.fix is None:
                self.fix = (card.index, length)
        use = self.query_one("#use-len", Button)
        use.display = self.fix is not None
        self.refresh_bindings()
        if self.fix is not None:
            fixed = self.query_one(f"#card-{self.fix[0]}", ModelCard)
            use.label = f"u: use {self.fix[1]:,} tokens for {fixed.border_title}"
        self.check_launch(plan)
        problem = self.query_one("#problem", Static)
        if plan.fits:
            problem.update("")
        else:
            problem.update(
                Text("Some models do not fit: change their settings, or go back and pick others.", style="bold red")
            )
        self.query_one("#continue", Button).disabled = not can_go_on(plan, self.choices, self.state)

    @work(thread=True, exclusive=True, group="readiness", exit_on_error=False, description="Checking the launch")
    def check_launch(self, plan: PlanView) -> None:
        if self.state.inventory is None:
            return
        try:
            rows = self.service.launch_readiness(self.state.inventory, plan)
        except Exception as error:  # noqa: BLE001 - shown, the plan stays usable
            self.app.call_from_thread(self.query_one("#readiness", Static).update, error_text(error))
            return
        self.app.call_from_thread(self._show_readiness, rows)

    def _show_readiness(self, rows: tuple[Check, ...]) -> None:
        self.readiness = rows
        self.query_one("#readiness", Static).update(readiness_text(rows))
        blocked = launch_blocked(rows)
        self.query_one("#continue", Button).label = DOWNLOAD_ONLY if blocked else DOWNLOAD_AND_LAUNCH
        self.query_one("#recheck").display = blocked

    @on(Button.Pressed, "#recheck")
    def recheck(self) -> None:
        if self.plan is not None:
            self.query_one("#readiness", Static).update(Text("checking…", style="dim"))
            self.check_launch(self.plan)

    def on_step_failed(self, message: StepFailed) -> None:
        self.query_one("#problem", Static).update(error_text(message.error))
        self.query_one("#continue", Button).disabled = True

    # -- leaving ------------------------------------------------------------------------------
    @on(Button.Pressed, "#continue")
    def action_next(self) -> None:
        if (
            self.plan is None
            or not can_go_on(self.plan, self.choices, self.state)
            or self.query_one("#continue", Button).disabled
        ):
            self.notify("The plan does not fit yet", severity="warning")
            return
        launch = not launch_blocked(self.readiness)
        self.dismiss(PlanResult(tuple(self.choices), self.plan, self.reserve_bytes, launch))

    @on(Button.Pressed, "#back")
    def back_pressed(self) -> None:
        self.action_back()
