"""`modelwiz --plain` (and no full-screen terminal): the wizard's steps as questionary prompts and
plain progress lines, over the same `wizard.service.Backend` the Textual app uses.

This is the one core module that imports questionary (lazily, in `run_plain`).
"""

from __future__ import annotations

import argparse
import sys
import threading
import time
from collections.abc import Callable
from typing import Any, TextIO

from wizard.errors import Cancelled, ModelwizError, UsageError
from wizard.naming import derive_name, unique_name
from wizard.progress import ProgressEvent
from wizard.service import ModelChoice, WizardService, blocking, curl_command
from wizard.textbar import plain_bar
from wizard.units import format_bytes, format_duration, format_rate
from wizard.wizard_state import WizardState

DONE = "✔ done picking"
SEARCH_AGAIN = "↻ search again"
PROGRESS_EVERY_S = 1.0


class Aborted(Exception):
    """The user left a prompt (Ctrl-C / Ctrl-D)."""


class Prompts:
    """questionary, bound to the terminal. When stdin or stdout is not a terminal but /dev/tty is,
    prompts talk to /dev/tty so piped output still gets plain lines."""

    def __init__(self, q: Any = None, prompt_kwargs: dict[str, Any] | None = None) -> None:
        if q is None:
            import questionary as q
        self.q = q
        self.kwargs = prompt_kwargs or {}

    def _ask(self, question: Any) -> Any:
        answer = question.ask()
        if answer is None:
            raise Aborted()
        return answer

    def text(self, message: str, *, default: str = "", validate: Callable[[str], Any] | None = None) -> str:
        return self._ask(self.q.text(message, default=default, validate=validate, **self.kwargs))

    def select(self, message: str, choices: list[str]) -> str:
        return self._ask(self.q.select(message, choices=choices, **self.kwargs))

    def confirm(self, message: str, *, default: bool = True) -> bool:
        return self._ask(self.q.confirm(message, default=default, **self.kwargs))


def terminal_prompt_kwargs() -> dict[str, Any]:
    """input/output for prompt_toolkit when the standard streams are not both terminals."""
    if sys.stdin.isatty() and sys.stdout.isatty():
        return {}
    from prompt_toolkit.input import create_input
    from prompt_toolkit.output import create_output

    tty = open("/dev/tty", "r+")  # noqa: SIM115 - lives as long as the process
    return {"input": create_input(tty), "output": create_output(tty)}


class ProgressLines:
    """ProgressEvents as plain lines, at most one a second (and every finish)."""

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
        parts = [event.task, f"{format_bytes(event.done_bytes)}/{format_bytes(event.total_bytes)}"]
        if event.fraction is not None:
            parts.append(f"{event.fraction:.0%}")
        if event.rate_bytes_per_s:
            parts.append(format_rate(event.rate_bytes_per_s))
        if event.eta_s is not None and not event.finished:
            parts.append(f"{format_duration(event.eta_s)} left")
        if event.current and not event.finished:
            parts.append(event.current)
        if event.finished:
            parts.append("done")
        print("  " + " · ".join(parts), file=self.out, flush=True)


class PlainWizard:
    def __init__(self, backend: WizardService, prompts: Prompts, out: TextIO) -> None:
        self.backend = backend
        self.ask = prompts
        self.out = out

    def say(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    # -- steps --------------------------------------------------------------------------------
    def machine(self, state: WizardState) -> WizardState:
        self.say("== Machine")
        spec = state.spec
        while True:
            try:
                inventory = self.backend.load_inventory(spec)
                break
            except ModelwizError as error:
                self.say(f"✖ GPUs: {error.one_line()}")
                spec = self.ask.text("Describe the GPUs to plan for (e.g. 2xH100-80GB), empty to quit:").strip()
                if not spec:
                    raise Aborted() from None
        for gpu in inventory.gpus:
            self.say(
                f"  GPU {gpu.index}  {gpu.name}  {format_bytes(gpu.memory_total_bytes)}, "
                f"{format_bytes(gpu.memory_free_bytes)} free"
            )
        checks = tuple(self.backend.machine_checks(inventory))
        marks = {"ok": "✔", "warn": "!", "fail": "✖"}
        for check in checks:
            self.say(f"{marks.get(check.status, '?')} {check.title}: {check.summary}")
            if check.hint:
                self.say(f"    fix: {check.hint}")
        return state.with_(inventory=inventory, checks=checks, spec=spec)

    def models(self, state: WizardState) -> WizardState:
        self.say("== Models")
        for e in state.existing:
            self.say(f"  in the repository: {e.name} ({e.source})")
        choices = list(state.choices)
        while True:
            query = self.ask.text("Search Hugging Face models (empty: popular):").strip()
            try:
                found = (
                    self.backend.search_models(query, state.inventory)
                    if query
                    else self.backend.popular_models(state.inventory)
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
                return state.with_(choices=tuple(choices))
            if picked == SEARCH_AGAIN:
                continue
            try:
                details = self.backend.model_details(labels[picked])
            except ModelwizError as error:
                self.say(f"✖ {error.one_line()}")
                continue
            if not details.pickable:
                self.say(f"✖ {details.access_note or details.note}")
                continue
            name = unique_name(derive_name(details.repo_id), state.taken_names() | {c.name for c in choices})
            choices.append(ModelChoice(details.repo_id, name, revision=details.revision))
            self.say(f"  + {details.repo_id} as {name}")
            if not self.ask.confirm("Add another model?", default=False):
                return state.with_(choices=tuple(choices))

    def show_plan(self, plan: Any) -> None:
        for d in plan.devices:
            self.say(f"  {d.label}: {format_bytes(d.total - d.free)} of {format_bytes(d.total)} planned")
            self.say(f"    [{plain_bar(d.parts(), 50)}]")
        self.say("    # weights  = KV cache  + overhead  x other processes  . free")
        for m in plan.models:
            if m.fits:
                self.say(
                    f"  ✔ {m.name}: TP {m.tensor_parallel_size}, context {m.max_model_len}, "
                    f"gpu_memory_utilization {m.gpu_memory_utilization:.2f}, "
                    f"≈{m.max_concurrency:.1f} full-length requests at once"
                )
            else:
                self.say(f"  ✖ {m.name} does not fit: {m.reason}")
                for s in m.suggestions:
                    self.say(f"      → {s}")

    def plan(self, state: WizardState) -> WizardState | None:
        """The plan, with context length editable; None means back to the models."""
        self.say("== Plan")
        choices = list(state.choices)
        accepted = list(choices)
        while True:
            try:
                plan = self.backend.plan(state.inventory, choices, state.existing)
            except ModelwizError as error:
                if choices == accepted:
                    raise  # nothing to undo: the error is not the user's last edit
                self.say(f"✖ {error.one_line()}")  # e.g. a context above the model's limit
                choices = list(accepted)
                continue
            accepted = list(choices)
            self.show_plan(plan)
            options = (
                (["Download and launch"] if plan.fits else [])
                + (["Change a context length"] if choices else [])
                + ["Back to models", "Quit"]
            )
            action = self.ask.select("What now?", options)
            if action == "Download and launch":
                return state.with_(choices=tuple(choices), plan=plan)
            if action == "Back to models":
                return None
            if action == "Quit":
                raise Aborted()
            name = self.ask.select("Which model?", [c.name for c in choices])
            index = next(i for i, c in enumerate(choices) if c.name == name)

            def valid(text: str) -> bool | str:
                return (text.strip().isdigit() and int(text) > 0) or "a whole number of tokens, e.g. 8192"

            length = int(self.ask.text(f"Context length for {name} (tokens):", validate=valid).strip())
            c = choices[index]
            choices[index] = ModelChoice(c.repo_id, c.name, c.revision, length, c.min_concurrency)

    def download(self, state: WizardState) -> None:
        self.say("== Download")
        disk = self.backend.disk_check(state.plan)
        if not disk.ok:
            raise ModelwizError(
                f"not enough disk space: {disk.explain()}",
                hint=f"free some space in {disk.path} (or use another model repository), then run modelwiz again",
            )
        cancel = threading.Event()
        lines = ProgressLines(self.out)
        for choice in state.choices:
            try:
                self.backend.download(state.plan, choice, on_progress=lines, cancel=cancel)
            except KeyboardInterrupt:
                cancel.set()
                raise Cancelled("download cancelled", hint="run modelwiz again to resume; finished files are kept")

    def launch(self, state: WizardState) -> WizardState:
        self.say("== Launch")
        stopping = blocking(state.checks, "launch")
        if stopping:
            problems = "; ".join(f"{c.title}: {c.summary}" for c in stopping)
            raise ModelwizError(
                f"cannot launch: {problems}", hint=stopping[0].hint or "fix the machine check, then run modelwiz again"
            )
        from wizard.service import LogLine, ModelState, PullProgress

        pull = ProgressLines(self.out)

        def event(e: Any) -> None:
            if isinstance(e, PullProgress):
                pull(e.progress)
            elif isinstance(e, LogLine):
                self.say(f"  | {e.text}")
            elif isinstance(e, ModelState):
                self.say(f"  {e.name}: {e.state}" + (f" ({e.detail})" if e.detail else ""))

        assert state.plan is not None
        self.backend.write_repository(state.plan, state.choices)
        endpoints = self.backend.launch(state.plan, on_event=event, cancel=threading.Event())
        return state.with_(endpoints=endpoints)

    def done(self, state: WizardState) -> None:
        e = state.endpoints
        assert e is not None
        self.say("== Done")
        self.say(f"  HTTP {e.http}   gRPC {e.grpc}   metrics {e.metrics}")
        model = (e.models or ("",))[0]
        self.say(curl_command(e, model))
        while True:
            prompt = self.ask.text(f"Test prompt for {model} (empty to finish):").strip()
            if not prompt:
                return
            for piece in self.backend.generate_stream(e, model, prompt):
                print(piece, end="", file=self.out, flush=True)
            self.say()

    # -- the flow -----------------------------------------------------------------------------
    def run(self, state: WizardState) -> int:
        state = state.with_(existing=tuple(self.backend.existing_models()))
        state = self.machine(state)
        while True:
            state = self.models(state)
            planned = self.plan(state)
            if planned is not None:
                state = planned
                break
        self.download(state)
        state = self.launch(state)
        self.done(state)
        return 0


def run_plain(
    args: argparse.Namespace,
    *,
    backend: WizardService | None = None,
    prompts: Prompts | None = None,
    out: TextIO | None = None,
) -> int:
    if backend is None:
        from wizard.core_service import CoreService

        backend = CoreService(spec=getattr(args, "gpus", None))
    if prompts is None:
        prompts = Prompts(prompt_kwargs=terminal_prompt_kwargs())
    wizard = PlainWizard(backend, prompts, out or sys.stdout)
    try:
        return wizard.run(WizardState(spec=getattr(args, "gpus", None) or backend.spec))
    except Aborted:
        print("modelwiz: stopped; nothing running was left half-done", file=out or sys.stdout)
        return 130


__all__ = ["Aborted", "PlainWizard", "ProgressLines", "Prompts", "UsageError", "run_plain"]
