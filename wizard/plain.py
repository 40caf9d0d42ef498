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
from wizard.hub import TOKENS_URL
from wizard.interactive import prompt_streams
from wizard.plan_render import KEEP_FREE_BYTES, card_text, device_legend, device_lines
from wizard.progress import ProgressEvent
from wizard.progress_text import describe
from wizard.service import (
    Check,
    CheckStatus,
    HomeModel,
    LaunchEvent,
    LogLine,
    ModelChoice,
    ModelState,
    PlanView,
    PullProgress,
    ServerView,
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
    HomeResult,
    LaunchResult,
    MachineResult,
    ModelsResult,
    PlanResult,
    Step,
    StepResult,
    advance,
    after_home,
    can_go_on,
    context_fix,
    download_all,
    existing_line,
    exit_summary,
    first_look,
    first_step,
    goes_home,
    launch_blocked,
    opening,
    opens_home,
    parse_concurrency,
    parse_context_length,
    pick,
    plan_for,
    plan_line,
    remove_questions,
    resume_choice,
    toggled_reserve,
    use_context,
    with_name,
    with_settings,
    write_and_launch,
)
from wizard.wizard_state import WizardState

DONE = "✔ done picking"
SEARCH_AGAIN = "↻ search again"
GO = "Download and launch"
DOWNLOAD_ONLY = "Download only"
CHECK_AGAIN = "Check the launch again"
KEEP_FREE = f"Keep {format_bytes(KEEP_FREE_BYTES)} free per GPU for later models"
FILL_FREE = "Fill free memory (give the kept room to these models)"
LOG_IN = "Log in to Hugging Face"
ADD = "Add models"
RESUME = "Resume "  # + the unfinished model's name
LAUNCH = "Launch (the same as `modelwiz up`)"
RELAUNCH = "Relaunch (restart the server with the repository's models)"
CHAT = "Chat with a model"
RELOAD = "Reload a model (the server loads it again)"
REMOVE = "Remove a model"
STOP = "Stop the server (the same as `modelwiz down`)"
SHOW_LOG = "Show the server log"
LOG_LINES = 40
CHANGE_CONTEXT = "Change a context length"
CHANGE_CONCURRENCY = "Change how many requests at once"
NAME_MODEL = "Name a model"
BACK_TO_MODELS = "Back to models"
QUIT = "Quit"
PROGRESS_EVERY_S = 1.0
CHECK_MARKS: dict[CheckStatus, str] = {"ok": "✔", "warn": "!", "fail": "✖"}


def valid(parse: Callable[[str], object]) -> Callable[[str], bool | str]:
    """A questionary validator from one of wizard_flow's parsers: True, or the parser's refusal."""

    def check(text: str) -> bool | str:
        try:
            parse(text)
        except ModelwizError as error:
            return error.one_line()
        return True

    return check


def on_disk(model: HomeModel) -> str:
    """An unfinished download's bytes so far (of its size, when recorded)."""
    if model.state != "unfinished" or model.bytes_done is None:
        return ""
    total = f" of {format_bytes(model.bytes_total)}" if model.bytes_total else ""
    return f", {format_bytes(model.bytes_done)}{total} on disk"


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

    def secret(self, message: str) -> str:
        """A hidden answer (a token): questionary's password prompt, never echoed."""
        return str(self._ask(self.q.password(message, **self.kwargs)))


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
        self.server: ServerView | None = None  # the home step's last look at the server

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
            options = list(labels) + [SEARCH_AGAIN, LOG_IN] + ([DONE] if choices or state.existing else [])
            picked = self.ask.select("Pick a model:", options)
            if picked == DONE:
                return ModelsResult(tuple(choices))
            if picked == SEARCH_AGAIN:
                continue
            if picked == LOG_IN:
                self.log_in()
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

    def show_readiness(self, rows: tuple[Check, ...]) -> None:
        """The plan's "Before launch" rows (podman, GPU access, the image), a fix under each
        problem, and what a blocked launch means."""
        self.say("  Before launch:")
        for row in rows:
            self.say(f"  {CHECK_MARKS[row.status]} {row.title}: {row.summary}")
            if row.hint and not row.ok:
                self.say(f"      fix: {row.hint}")
        if launch_blocked(rows):
            self.say(
                f"  The launch would stop here: fix it and choose {CHECK_AGAIN!r}, or choose {DOWNLOAD_ONLY!r}"
                " (then `modelwiz up` launches)."
            )

    def readiness(self, state: WizardState, plan: PlanView) -> tuple[Check, ...]:
        if state.inventory is None:
            return ()
        try:
            rows = tuple(self.service.launch_readiness(state.inventory, plan))
        except ModelwizError as error:  # shown; the plan stays usable and the launch says why later
            self.say(f"  Before launch: ✖ {error.one_line()}")
            return ()
        self.show_readiness(rows)
        return rows

    def _which(self, choices: list[ModelChoice], plan: PlanView | None) -> int:
        labels = [(plan.name_of(c) if plan else None) or c.repo_id for c in choices]
        return labels.index(self.ask.select("Which model?", labels))

    def plan(self, state: WizardState) -> PlanResult | Back:
        """The plan, with context length and name editable."""
        self.say("== Plan")
        choices = list(state.choices)
        accepted = list(choices)
        reserve = state.reserve_bytes
        plan: PlanView | None = None
        while True:
            rows: tuple[Check, ...] = ()
            fix: tuple[int, int] | None = None
            try:
                plan = plan_for(self.service, state, choices, reserve_bytes=reserve)
            except ModelwizError as error:  # e.g. a context above the model's limit, a duplicate
                self.say(f"✖ {error.one_line()}")
                if choices != accepted:
                    choices = list(accepted)  # undo the edit that failed
                    continue
                plan = None
            else:
                accepted = list(choices)
                self.show_plan(plan)
                fix = context_fix(plan, choices)
                if can_go_on(plan, choices, state):
                    rows = self.readiness(state, plan)
            blocked = launch_blocked(rows)
            use_fix = ""
            if fix is not None and plan is not None:
                use_fix = f"Use {fix[1]:,} tokens for {plan.name_of(choices[fix[0]]) or choices[fix[0]].repo_id}"
            options = (
                ([DOWNLOAD_ONLY, CHECK_AGAIN] if blocked else [GO] if can_go_on(plan, choices, state) else [])
                + ([use_fix] if use_fix else [])
                + ([CHANGE_CONTEXT, CHANGE_CONCURRENCY, NAME_MODEL] if choices else [])
                + [FILL_FREE if reserve else KEEP_FREE, BACK_TO_MODELS, QUIT]
            )
            action = self.ask.select("What now?", options)
            if action in (GO, DOWNLOAD_ONLY):
                assert plan is not None
                return PlanResult(tuple(choices), plan, reserve, launch=action == GO)
            if action == BACK_TO_MODELS:
                return BACK
            if action == QUIT:
                raise stopped()
            if action == CHECK_AGAIN:
                continue
            if action in (KEEP_FREE, FILL_FREE):
                reserve = toggled_reserve(reserve)
                continue
            if action == use_fix and fix is not None:
                choices = list(use_context(choices, fix))
                continue
            index = self._which(choices, plan)
            c = choices[index]
            if action == NAME_MODEL:
                name = self.ask.text(f"Name for {c.repo_id} (empty: modelwiz names it):", default=c.name or "")
                choices = list(with_name(choices, index, name))
                continue

            label = (plan.name_of(c) if plan else None) or c.name or c.repo_id
            if action == CHANGE_CONCURRENCY:
                count = parse_concurrency(
                    self.ask.text(
                        f"Full-length requests at once for {label} (now {c.min_concurrency}):",
                        validate=valid(parse_concurrency),
                    )
                )
                choices = list(with_settings(choices, index, max_model_len=c.max_model_len, min_concurrency=count))
                continue
            length = parse_context_length(
                self.ask.text(
                    f"Context length for {label} (tokens; {CONTEXT_HINT}):", validate=valid(parse_context_length)
                )
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
            raise Cancelled("download cancelled", hint="run modelwiz again to resume; what arrived is kept") from None
        if not state.launch:
            self.say(
                f"  Download only: the models are in {self.service.repository_path()}; once what stops the"
                " launch is fixed, `modelwiz up` launches them."
            )
        return DownloadResult()

    def launch_events(self) -> Callable[[LaunchEvent], None]:
        """Launch progress as plain lines: the image pull, the server's log, each model's state."""
        pull = ProgressLines(self.out)

        def event(e: LaunchEvent) -> None:
            if isinstance(e, PullProgress):
                pull(e.progress)
            elif isinstance(e, LogLine):
                self.say(f"  | {e.text}")
            elif isinstance(e, ModelState):
                self.say(f"  {e.name}: {e.state}" + (f" ({e.detail})" if e.detail else ""))

        return event

    def launch(self, state: WizardState) -> LaunchResult:
        self.say("== Launch")
        event = self.launch_events()
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

    # -- the home step (a re-run: the repository has models) ----------------------------------
    def look(self, state: WizardState) -> tuple[HomeModel, ...]:
        """The server and the repository's models with their state, as the home screen shows them."""
        try:
            self.server = self.service.server_status()
            models = self.service.home_models(self.server)
        except ModelwizError as error:  # shown; the manifest's view stands in
            self.say(f"✖ {error.one_line()}")
            return first_look(state.existing)
        server = self.server
        if server.running:
            self.say(f"  Server running  {server.name or ''}  {server.image or ''}".rstrip())
            for label, url in server.lines:
                self.say(f"    {label}  {url}")
        else:
            self.say("  Server not running" + (f": {server.detail}" if server.detail else ""))
        for m in models:
            self.say(f"  {m.name}  ({m.source})  {m.state}" + (f": {m.reason}" if m.reason else "") + on_disk(m))
            self.say(f"    {plan_line(m.plan)}")
        return models

    def home(self, state: WizardState) -> HomeResult:
        while True:
            self.say("== Home")
            models = self.look(state)
            unfinished = {f"{RESUME}{m.name}": m for m in models if m.state == "unfinished"}
            servable = any(m.state != "unfinished" for m in models)
            running = self.server is not None and self.server.running
            ready = [m.name for m in models if m.state == "ready"]
            options = (
                [ADD]
                + list(unfinished)
                + ([RELAUNCH if running else LAUNCH] if servable else [])
                + ([CHAT] if running and ready else [])
                + ([RELOAD, STOP, SHOW_LOG] if running else [])
                + ([REMOVE] if models else [])
                + [LOG_IN, QUIT]
            )
            action = self.ask.select("Home: what now?", options)
            if action == ADD:
                return HomeResult("add")
            if action in unfinished:
                return resume_choice(unfinished[action])
            if action == QUIT:
                return HomeResult("quit")
            if action == LOG_IN:
                self.log_in()
                continue
            if action in (CHAT, RELOAD, STOP, SHOW_LOG, REMOVE):
                self.home_action(action, models, ready)
                continue
            try:  # launch or relaunch, as `modelwiz up`
                endpoints = self.service.relaunch(on_event=self.launch_events(), cancel=threading.Event())
            except ModelwizError as error:  # the failed model shows its reason on the next look
                self.say(f"✖ {error.one_line()}")
                continue
            self.say(f"  the server is up; ready: {', '.join(endpoints.models)}")

    def home_action(self, action: str, models: tuple[HomeModel, ...], ready: list[str]) -> None:
        """One of the home step's actions on the server or a model; a refusal is shown, then home again."""
        try:
            if action == STOP:
                stopped_one = self.service.stop_server()
                self.say("  server stopped and removed" if stopped_one else "  no server was running")
            elif action == SHOW_LOG:
                lines = self.service.server_log(LOG_LINES)
                self.say("\n".join(f"  | {line}" for line in lines) if lines else "  (the server log is empty)")
            elif action == CHAT:
                self.chat(self.ask.select("Chat with which model?", ready))
            elif action == RELOAD:
                name = self.ask.select("Reload which model?", [m.name for m in models if m.state != "unfinished"])
                self.service.reload_model(name)
                self.say(f"  {name} loaded again")
            else:
                self.remove(self.ask.select("Remove which model?", [m.name for m in models]), models)
        except ModelwizError as error:
            self.say(f"✖ {error.one_line()}")

    def remove(self, name: str, models: tuple[HomeModel, ...]) -> None:
        """As `modelwiz remove`: asked first, and whether the weights go too (their size shown)."""
        remove, delete_weights = remove_questions(next(m for m in models if m.name == name))
        if not self.ask.confirm(remove, default=False):
            return
        delete = self.ask.confirm(delete_weights, default=False)
        for note in self.service.remove_model(name, delete_weights=delete):
            self.say(f"  {note}")

    def chat(self, model: str) -> None:
        """A conversation with `model` until an empty line (as `modelwiz chat`)."""
        if self.server is None or self.server.endpoints is None:
            raise ModelwizError("the server is not running", hint="launch it first (`modelwiz up`)")
        chat = self.service.open_chat(self.server.endpoints, model)
        for note in chat.notes:
            self.say(f"  {note}")
        while True:
            text = self.ask.text(f"You (to {model}; an empty line goes back):").strip()
            if not text:
                return
            for piece in chat.send(text):
                print(piece, end="", file=self.out, flush=True)
            self.say()
            if chat.stats:
                self.say(f"  ({chat.stats})")

    def log_in(self) -> None:
        """`modelwiz login` without leaving: a hidden prompt, checked and saved by the core; the
        token is never printed."""
        token = self.ask.secret(f"Hugging Face token (from {TOKENS_URL}; not shown):")
        try:
            user = self.service.log_in(token)
        except ModelwizError as error:
            self.say(f"✖ {error.one_line()}")
            return
        self.say(f"  Logged in to Hugging Face as {user}; gated models can be picked now")

    # -- the flow -----------------------------------------------------------------------------
    def run(self, state: WizardState) -> int:
        """A first run walks the steps and leaves (after a launch, or after "download only"); a
        run over a repository with models opens on the home step, which starts the steps and
        gets them back. Either way it leaves with the summary the Textual app prints."""
        state = opening(self.service, state)
        if not opens_home(state):
            state, home = self.steps(state, first_step(state), entry=None)
            if not home:
                if not state.launch:
                    state = self.reread(state)
                return self.leave(state)
            state = self.reread(state)
        while True:
            self.state = state
            state, step = after_home(state, self.home(state))
            if step is None:
                return self.leave(state)
            state, _home = self.steps(state, step, entry=step)
            state = self.reread(state)

    def steps(self, state: WizardState, step: Step | None, *, entry: Step | None) -> tuple[WizardState, bool]:
        """The guided steps from `step` until the last one answers; True when Back leaves them
        for the home step (`wizard_flow.goes_home`)."""
        while step is not None:
            self.state = state
            answer = self.ask_step(step, state)
            if goes_home(entry, step, answer):
                return state, True
            state, step = advance(state, step, answer)
        self.state = state
        return state, False

    def reread(self, state: WizardState) -> WizardState:
        return state.with_(existing=tuple(self.service.existing_models()))

    def leave(self, state: WizardState) -> int:
        self.state = state
        self.say(exit_summary(self.server, state.endpoints).rstrip("\n"))
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
