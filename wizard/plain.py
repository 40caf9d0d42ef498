"""`modelwiz --plain` (and no full-screen terminal): the wizard's steps as questionary prompts and
plain progress lines, over the same `wizard.service.WizardService` and the same flow
(`wizard.wizard_flow`) as the Textual app.

This is the one core module that imports questionary (lazily, in `Prompts`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from wizard.errors import Cancelled, ModelwizError
from wizard.interactive import prompt_streams
from wizard.plan_render import card_text, device_legend, device_lines
from wizard.progress import ProgressEvent
from wizard.progress_text import describe
from wizard.service import (
    CheckStatus,
    LaunchEvent,
    LogLine,
    ModelChoice,
    ModelState,
    PlanView,
    PullProgress,
    WizardService,
    curl_command,
)
from wizard.units import format_bytes
from wizard.wizard_flow import (
    BACK,
    CONTEXT_HINT,
    Back,
    DoneResult,
    DownloadResult,
    LaunchResult,
    MachineResult,
    ModelsResult,
    PlanResult,
    Step,
    StepResult,
    advance,
    can_go_on,
    download_all,
    existing_line,
    first_step,
    opening,
    parse_context_length,
    pick,
    plan_for,
    with_name,
    with_settings,
    write_and_launch,
)
from wizard.wizard_state import WizardState

DONE = "✔ done picking"
SEARCH_AGAIN = "↻ search again"
GO = "Download and launch"
CHANGE_CONTEXT = "Change a context length"
NAME_MODEL = "Name a model"
BACK_TO_MODELS = "Back to models"
QUIT = "Quit"
PROGRESS_EVERY_S = 1.0
CHECK_MARKS: dict[CheckStatus, str] = {"ok": "✔", "warn": "!", "fail": "✖"}


def stopped() -> Cancelled:
    """The user left a prompt (Ctrl-C / Ctrl-D)."""
    return Cancelled("stopped at a question; nothing running was left half-done")


class Prompts:
    """questionary, bound to the terminal (`wizard.interactive.prompt_streams`)."""

    def __init__(self, q: Any = None, prompt_kwargs: dict[str, Any] | None = None) -> None:
        if q is None:
            import questionary as q
        self.q = q
        self.kwargs = prompt_kwargs or {}

    def _ask(self, question: Any) -> Any:
        answer = question.ask()
        if answer is None:
            raise stopped()
        return answer

    def text(self, message: str, *, default: str = "", validate: Callable[[str], Any] | None = None) -> str:
        return str(self._ask(self.q.text(message, default=default, validate=validate, **self.kwargs)))

    def select(self, message: str, choices: list[str]) -> str:
        return str(self._ask(self.q.select(message, choices=choices, **self.kwargs)))

    def confirm(self, message: str, *, default: bool = True) -> bool:
        return bool(self._ask(self.q.confirm(message, default=default, **self.kwargs)))


class ProgressLines:
    """ProgressEvents as plain lines (`wizard.progress_text.describe`), at most one a second (and
    every finish)."""

    def __init__(self, out: TextIO, clock: Callable[[], float] = time.monotonic) -> None:
        self.out = out
        self.clock = clock
        self.last = float("-inf")
        self.lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        now = self.clock()
        with self.lock:
            if not event.finished and now - self.last < PROGRESS_EVERY_S:
                return
            self.last = now
        print(f"  {event.task}  {describe(event)}" + ("  done" if event.finished else ""), file=self.out, flush=True)


class PlainWizard:
    def __init__(self, service: WizardService, prompts: Prompts, out: TextIO) -> None:
        self.service = service
        self.ask = prompts
        self.out = out
        self.state = WizardState()

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # -- steps --------------------------------------------------------------------------------
    def machine(self, state: WizardState) -> MachineResult:
        self.say("== Machine")
        spec = state.spec
        while True:
            try:
                inventory = self.service.load_inventory(spec)
                break
            except ModelwizError as error:
                self.say(f"✖ GPUs: {error.one_line()}")
                spec = self.ask.text("Describe the GPUs to plan for (e.g. 2xH100-80GB), empty to quit:").strip()
                if not spec:
                    raise stopped() from None
        for gpu in inventory.gpus:
            self.say(
                f"  GPU {gpu.index}  {gpu.name}  {format_bytes(gpu.memory_total_bytes)}, "
                f"{format_bytes(gpu.memory_free_bytes)} free"
            )
        checks = tuple(self.service.machine_checks(inventory))
        for check in checks:
            self.say(f"{CHECK_MARKS[check.status]} {check.title}: {check.summary}")
            if check.hint:
                self.say(f"    fix: {check.hint}")
        return MachineResult(inventory, checks, spec)

    def models(self, state: WizardState) -> ModelsResult:
        self.say("== Models")
        for e in state.existing:
            self.say(f"  in the repository: {existing_line(e)}")
        choices = list(state.choices)
        while True:
            query = self.ask.text("Search Hugging Face models (empty: popular):").strip()
            try:
                found = (
                    self.service.search_models(query, state.inventory)
                    if query
                    else self.service.popular_models(state.inventory)
                )
            except ModelwizError as error:  # a failed search is shown; the picks so far stay
                self.say(f"✖ {error.one_line()}")
                found = []
            labels = {}
            for c in found:
                tags = [c.fit_note or c.fit] + (["gated"] if c.gated else [])
                labels[f"{c.repo_id}  ({', '.join(t for t in tags if t)})"] = c.repo_id
            options = list(labels) + [SEARCH_AGAIN] + ([DONE] if choices or state.existing else [])
            picked = self.ask.select("Pick a model:", options)
            if picked == DONE:
                return ModelsResult(tuple(choices))
            if picked == SEARCH_AGAIN:
                continue
            try:
                choice = pick(self.service.model_details(labels[picked]), choices)
            except ModelwizError as error:
                self.say(f"✖ {error.one_line()}")
                continue
            choices.append(choice)
            self.say(f"  + {choice.repo_id}")
            if not self.ask.confirm("Add another model?", default=False):
                return ModelsResult(tuple(choices))

    def show_plan(self, plan: PlanView) -> None:
        for d in plan.devices:
            for line in device_lines(d):
                self.say(f"  {line}")
        self.say(f"    {device_legend()}")
        for m in plan.models:
            self.say(f"  {m.name}  ({m.model})")
            for line in card_text(m).splitlines():
                self.say(f"    {line}")

    def _which(self, choices: list[ModelChoice], plan: PlanView | None) -> int:
        labels = [(plan.name_of(c) if plan else None) or c.repo_id for c in choices]
        return labels.index(self.ask.select("Which model?", labels))

    def plan(self, state: WizardState) -> PlanResult | Back:
        """The plan, with context length and name editable."""
        self.say("== Plan")
        choices = list(state.choices)
        accepted = list(choices)
        plan: PlanView | None = None
        while True:
            try:
                plan = plan_for(self.service, state, choices)
            except ModelwizError as error:  # e.g. a context above the model's limit, a duplicate
                self.say(f"✖ {error.one_line()}")
                if choices != accepted:
                    choices = list(accepted)  # undo the edit that failed
                    continue
                plan = None
            else:
                accepted = list(choices)
                self.show_plan(plan)
            options = (
                ([GO] if can_go_on(plan, choices, state) else [])
                + ([CHANGE_CONTEXT, NAME_MODEL] if choices else [])
                + [BACK_TO_MODELS, QUIT]
            )
            action = self.ask.select("What now?", options)
            if action == GO:
                assert plan is not None
                return PlanResult(tuple(choices), plan)
            if action == BACK_TO_MODELS:
                return BACK
            if action == QUIT:
                raise stopped()
            index = self._which(choices, plan)
            c = choices[index]
            if action == NAME_MODEL:
                name = self.ask.text(f"Name for {c.repo_id} (empty: modelwiz names it):", default=c.name or "")
                choices = list(with_name(choices, index, name))
                continue

            def valid(text: str) -> bool | str:
                try:
                    parse_context_length(text)
                except ModelwizError as error:
                    return error.one_line()
                return True

            length = parse_context_length(
                self.ask.text(f"Context length for {c.name or c.repo_id} (tokens; {CONTEXT_HINT}):", validate=valid)
            )
            choices = list(with_settings(choices, index, max_model_len=length, min_concurrency=c.min_concurrency))

    def download(self, state: WizardState) -> DownloadResult:
        self.say("== Download")
        cancel = threading.Event()
        lines = ProgressLines(self.out)
        try:
            download_all(self.service, state, on_progress=lambda _index, event: lines(event), cancel=cancel)
        except KeyboardInterrupt:
            cancel.set()
            raise Cancelled(
                "download cancelled", hint="run modelwiz again to resume; finished files are kept"
            ) from None
        return DownloadResult()

    def launch(self, state: WizardState) -> LaunchResult:
        self.say("== Launch")
        pull = ProgressLines(self.out)

        def event(e: LaunchEvent) -> None:
            if isinstance(e, PullProgress):
                pull(e.progress)
            elif isinstance(e, LogLine):
                self.say(f"  | {e.text}")
            elif isinstance(e, ModelState):
                self.say(f"  {e.name}: {e.state}" + (f" ({e.detail})" if e.detail else ""))

        return LaunchResult(write_and_launch(self.service, state, on_event=event, cancel=threading.Event()))

    def done(self, state: WizardState) -> DoneResult:
        e = state.endpoints
        assert e is not None
        self.say("== Done")
        self.say(f"  HTTP {e.http}   gRPC {e.grpc}   metrics {e.metrics}")
        model = (e.models or ("",))[0]
        self.say(curl_command(e, model))
        while True:
            prompt = self.ask.text(f"Test prompt for {model} (empty to finish):").strip()
            if not prompt:
                return DoneResult()
            for piece in self.service.generate_stream(e, model, prompt):
                print(piece, end="", file=self.out, flush=True)
            self.say()

    def ask_step(self, step: Step, state: WizardState) -> StepResult | Back:
        steps: dict[Step, Callable[[WizardState], StepResult | Back]] = {
            "machine": self.machine,
            "models": self.models,
            "plan": self.plan,
            "download": self.download,
            "launch": self.launch,
            "done": self.done,
        }
        return steps[step](state)

    # -- the flow -----------------------------------------------------------------------------
    def run(self, state: WizardState) -> int:
        state = opening(self.service, state)
        step: Step | None = first_step(state)
        while step is not None:
            self.state = state
            state, step = advance(state, step, self.ask_step(step, state))
        self.state = state
        return 0


def run_plain(
    args: argparse.Namespace | None,
    *,
    service: WizardService | None = None,
    prompts: Prompts | None = None,
    out: TextIO | None = None,
) -> int:
    gpus = getattr(args, "gpus", None)
    if service is None:
        from wizard.core_service import CoreService

        service = CoreService(spec=gpus)
    if prompts is None:
        prompts = Prompts(prompt_kwargs=prompt_streams())
    wizard = PlainWizard(service, prompts, out or sys.stdout)
    try:
        return wizard.run(WizardState(spec=gpus or service.spec))
    except Cancelled as error:
        print(f"modelwiz: {error.one_line()}", file=sys.stderr)
        return error.exit_code


__all__ = ["PlainWizard", "ProgressLines", "Prompts", "run_plain"]
