"""Step 3: the plan as a picture. Per GPU a bar of its memory (weights, KV cache, overhead, other
processes, free); per model its settings. Context length and concurrency are editable, the plan is
recomputed as you type, and a model that stops fitting says why."""

from __future__ import annotations

from typing import Any

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.timer import Timer
from textual.widgets import Button, Input, Label, Static

from screens.messages import PlanComputed, StepFailed
from screens.step import StepScreen, error_text
from screens.widgets.memory_bar import MemoryBar, MemoryLegend
from wizard.service import ModelChoice, PlanView, WizardService
from wizard.units import format_bytes
from wizard.wizard_state import WizardState

REPLAN_DELAY_S = 0.25


def settings_text(plan: Any) -> Text:
    """One model's plan: where it runs and with what settings, or why it does not fit."""
    text = Text()
    if plan.fits:
        text.append("✔ fits  ", style="bold green")
        ig = plan.instance_group
        where = ", ".join(plan.devices) or ", ".join(str(g) for g in ig.gpus)
        text.append(
            f"TP {plan.tensor_parallel_size} on GPU {where} · {ig.kind} ×{ig.count} · "
            f"max_model_len {plan.max_model_len:,} · gpu_memory_utilization {plan.gpu_memory_utilization:.2f}\n"
        )
        text.append(
            f"weights {format_bytes(plan.weights_bytes)} · KV cache {plan.kv_cache_tokens:,} tokens · "
            f"≈{plan.max_concurrency:.1f} full-length requests at once",
            style="dim",
        )
        if plan.kv_cache_dtype:
            text.append(f" · KV {plan.kv_cache_dtype}", style="dim")
    else:
        text.append("✖ does not fit: ", style="bold red")
        text.append(plan.reason or "no placement found")
        for s in plan.suggestions:
            text.append(f"\n  → {s}", style="yellow")
    return text


def parse_positive(value: str, *, allow_empty: bool) -> int | None:
    """`8192`, `8k`, `32K`, or empty (planner decides). Raises ValueError with the rule."""
    text = value.strip().lower().replace("_", "").replace(",", "")
    if not text:
        if allow_empty:
            return None
        raise ValueError("enter a number")
    factor = 1
    if text.endswith("k"):
        factor, text = 1024, text[:-1]
    if not text.isdigit() or int(text) <= 0:
        raise ValueError("enter a whole number above 0 (8192 or 8k)")
    return int(text) * factor


class ModelCard(Vertical):
    """A model's name, its editable settings and what the planner made of them."""

    def __init__(self, choice: ModelChoice | None, name: str, source: str, *, index: int) -> None:
        super().__init__(classes="model-card", id=f"card-{index}")
        self.choice = choice
        self.index = index
        self.border_title = name
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
                )
                yield Label("concurrency")
                yield Input(str(self.choice.min_concurrency), id=f"conc-{self.index}", classes="conc")
        yield Static(classes="verdict")


class PlanScreen(StepScreen):
    STEP = "plan"
    CSS_PATH = "plan.tcss"

    def __init__(self, backend: WizardService, state: WizardState) -> None:
        super().__init__()
        self.backend = backend
        self.state = state
        self.choices: list[ModelChoice] = list(state.choices)
        self.plan: PlanView | None = None
        self._timer: Timer | None = None

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with VerticalScroll(id="body"):
            yield Static("Memory per GPU", classes="section-title")
            yield Vertical(id="bars")
            yield MemoryLegend()
            yield Static("Models", classes="section-title")
            for e in self.state.existing:
                yield ModelCard(None, e.name, e.source, index=-1 - self.state.existing.index(e))
            for i, c in enumerate(self.choices):
                yield ModelCard(c, c.name, c.repo_id, index=i)
            yield Static(id="problem", classes="hint")
        with Horizontal(classes="actions"):
            yield Button("Back", id="back")
            yield Button("Download & launch", id="continue", variant="primary", disabled=True)
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.replan()

    # -- editing ------------------------------------------------------------------------------
    @on(Input.Changed)
    def setting_changed(self, event: Input.Changed) -> None:
        card = next(a for a in event.input.ancestors if isinstance(a, ModelCard))
        assert card.choice is not None
        try:
            length = parse_positive(self.query_one(f"#len-{card.index}", Input).value, allow_empty=True)
            conc = parse_positive(self.query_one(f"#conc-{card.index}", Input).value, allow_empty=False)
        except ValueError as error:
            card.query_one(".verdict", Static).update(Text(f"✖ {error}", style="bold red"))
            self.query_one("#continue", Button).disabled = True
            return
        assert conc is not None
        new = ModelChoice(card.choice.repo_id, card.choice.name, card.choice.revision, length, conc)
        if new == self.choices[card.index]:
            return
        self.choices[card.index] = new
        card.choice = new
        self.query_one("#continue", Button).disabled = True
        if self._timer is not None:
            self._timer.stop()
        self._timer = self.set_timer(REPLAN_DELAY_S, self.replan)

    @work(thread=True, exclusive=True, group="plan", exit_on_error=False, description="Planning")
    def replan(self) -> None:
        choices = tuple(self.choices)
        try:
            plan = self.backend.plan(self.state.inventory, choices, self.state.existing)
        except Exception as error:  # noqa: BLE001
            self.post_message(StepFailed("plan", error))
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
        for card in self.query(ModelCard):
            name = card.border_title
            model = plan.model(str(name))
            verdict = card.query_one(".verdict", Static)
            if model is None:
                verdict.update(Text("not planned", style="dim"))
                continue
            verdict.update(settings_text(model))
            card.set_class(not model.fits, "misfit")
        problem = self.query_one("#problem", Static)
        if plan.fits:
            problem.update("")
        else:
            problem.update(
                Text("Some models do not fit: change their settings, or go back and pick others.", style="bold red")
            )
        self.query_one("#continue", Button).disabled = not (plan.fits and bool(self.choices or self.state.existing))

    def on_step_failed(self, message: StepFailed) -> None:
        self.query_one("#problem", Static).update(error_text(message.error))
        self.query_one("#continue", Button).disabled = True

    # -- leaving ------------------------------------------------------------------------------
    @on(Button.Pressed, "#continue")
    def action_next(self) -> None:
        if self.plan is None or not self.plan.fits or self.query_one("#continue", Button).disabled:
            self.notify("The plan does not fit yet", severity="warning")
            return
        self.dismiss((tuple(self.choices), self.plan))

    @on(Button.Pressed, "#back")
    def back_pressed(self) -> None:
        self.action_back()
