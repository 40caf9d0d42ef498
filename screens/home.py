"""The home screen: what a re-run opens on (in the spirit of `ollama ps` and k9s).

It shows the repository's server (state, image, endpoints), each model with its state and plan,
and per GPU the memory the plans give the engines against what is in use now (refreshed while
the screen is open). Every action is one key and a command palette entry; each works on the
selected row, runs in a thread worker that posts messages, and ends in a one-line result, or a
reason with the way forward.

The screen returns a `wizard.wizard_flow.HomeResult` when the guided steps take over (add
models, resume an unfinished download) or the user leaves.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable
from typing import Any, ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult, SystemCommand
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.message import Message
from textual.screen import Screen
from textual.widgets import DataTable, Footer, Header, Static

from screens.messages import LaunchProgress
from screens.step import error_text
from wizard.errors import ModelwizError
from wizard.plan_types import ModelPlan
from wizard.service import GpuUse, HomeModel, LaunchEvent, LogLine, ModelState, PullProgress, ServerView, WizardService
from wizard.units import GiB, format_bytes
from wizard.wizard_flow import TOKENS_PER_K, HomeResult, first_look, plan_line, remove_questions, resume_choice
from wizard.wizard_state import WizardState

POLL_S = 2.0  # how often the server, models and GPU memory are read again
BAR_WIDTH = 20
STATE_LOOK: dict[str, tuple[str, str]] = {  # state -> (mark, style); the word itself carries the meaning
    "ready": ("●", "green"),
    "loading": ("◐", "yellow"),
    "failed": ("✗", "red"),
    "stopped": ("○", "dim"),
    "unfinished": ("↓", "cyan"),
    "problem": ("!", "red"),
    "checking": ("…", "dim"),
}


# ---------------------------------------------------------------------------------------------
# What the workers post (plain Message subclasses, as in screens.messages)


class HomeRefreshed(Message):
    def __init__(self, server: ServerView, models: tuple[HomeModel, ...], gpus: tuple[GpuUse, ...]) -> None:
        super().__init__()
        self.server = server
        self.models = models
        self.gpus = gpus


class ActionDone(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ActionFailed(Message):
    def __init__(self, error: Exception, look_again: bool = False) -> None:
        super().__init__()
        self.error = error
        self.look_again = look_again  # the failure changed what the screen shows (a launch)


class LogRead(Message):
    def __init__(self, lines: tuple[str, ...]) -> None:
        super().__init__()
        self.lines = lines


# ---------------------------------------------------------------------------------------------
# Rendering (pure)


def server_text(server: ServerView | None) -> Text:
    text = Text()
    if server is None:
        return Text("Server: looking…", style="dim")
    if server.running:
        text.append("Server ", style="bold")
        text.append("● running", style="green")
        text.append(f"  {server.name or ''}  {server.image or ''}".rstrip())
        if server.detail:
            text.append(f"\n{server.detail}", style="yellow")
        return text
    text.append("Server ", style="bold")
    text.append("○ not running", style="dim")
    if server.state == "stopped":
        text.append(f"  {server.name or ''} ({server.detail})")
    text.append("\nlaunch it with l (the same as `modelwiz up`)", style="dim")
    return text


def endpoints_text(server: ServerView | None) -> Text:
    if server is None or not server.running or not server.lines:
        return Text("no endpoints while the server is down", style="dim")
    width = max(len(label) for label, _ in server.lines)
    text = Text()
    for i, (label, url) in enumerate(server.lines):
        if i:
            text.append("\n")
        text.append(f"{label:<{width}}  ", style="bold")
        text.append(url)
    return text


def state_cell(model: HomeModel) -> Text:
    mark, style = STATE_LOOK[model.state]
    text = Text(f"{mark} {model.state}", style=style)
    if model.state == "unfinished" and model.bytes_done is not None:
        if model.bytes_total:
            done = format_bytes(model.bytes_done).removesuffix(" GiB") if model.bytes_total >= GiB else None
            text.append(f" {done or format_bytes(model.bytes_done)}/{format_bytes(model.bytes_total)}", style="")
        else:
            text.append(f" {format_bytes(model.bytes_done)}", style="")
    return text


def plan_cell(plan: ModelPlan | None) -> str:
    """The plan in the table, short: tensor parallel, context (k tokens), memory share."""
    if plan is None:
        return "-"
    return f"tp {plan.tensor_parallel_size} · {plan.max_model_len // TOKENS_PER_K}k · {plan.gpu_memory_utilization:.2f}"


def detail_text(model: HomeModel | None) -> Text:
    """The selected model: its source, plan, and why it failed or what to do."""
    if model is None:
        return Text("no model: press a to add one", style="dim")
    text = Text()
    text.append(model.name, style="bold")
    text.append(f"  from {model.source}\n")
    text.append(f"plan  {plan_line(model.plan)}")
    if model.reason:
        text.append(f"\n{model.state}: {model.reason}", style="red" if model.state in ("failed", "problem") else "")
    hint = {
        "failed": "view the log with g, then reload with o (or relaunch with l)",
        "stopped": "launch with l to serve it",
        "unfinished": "resume the download with r (what is on disk is kept)",
        "problem": "`modelwiz status` shows the details; remove it with x",
    }.get(model.state)
    if hint:
        text.append(f"\n{hint}", style="dim")
    return text


def gpu_bar(use: GpuUse, width: int = BAR_WIDTH) -> str:
    """`█` in use now, `▒` planned beyond it, `·` free: the glyphs carry the meaning without colour."""
    total = max(use.total, 1)
    used = min(width, round(width * (use.used_now or 0) / total))
    planned = min(width, round(width * use.planned / total))
    return "█" * used + "▒" * max(0, planned - used) + "·" * (width - max(used, planned))


def gpus_text(gpus: Iterable[GpuUse]) -> Text:
    text = Text()
    for i, use in enumerate(gpus):
        if i:
            text.append("\n")
        text.append(f"{use.label}\n", style="bold")
        text.append(f"  [{gpu_bar(use)}] planned {format_bytes(use.planned)} of {format_bytes(use.total)}")
        if use.used_now is None:
            text.append(" · described: no live use", style="dim")
        else:
            text.append(f" · in use {format_bytes(use.used_now)}")
    if not text:
        return Text("no GPUs known: add models to describe them", style="dim")
    text.append("\n█ in use now (NVML)  ▒ planned for the engines  · free", style="dim")
    return text


# ---------------------------------------------------------------------------------------------
# The screen

ACTIONS: tuple[tuple[str, str, str, str], ...] = (  # key, action, title, palette help
    ("a", "add", "Add models", "Pick more models (the guided steps)"),
    ("r", "resume", "Resume", "Resume the selected unfinished download"),
    ("l", "launch", "Launch", "Start the server, or load what is new (modelwiz up)"),
    ("o", "reload", "Reload", "Load the selected model again"),
    ("x", "remove", "Remove", "Take the selected model out of the repository (modelwiz remove)"),
    ("s", "stop", "Stop", "Stop the server (modelwiz down)"),
    ("c", "chat", "Chat", "Chat with the selected model"),
    ("y", "copy", "Copy URL", "Copy the server's endpoint"),
    ("g", "log", "Log", "The server's last log lines"),
)


class HomeScreen(Screen[HomeResult]):
    # Its rules (home.tcss) load with the app's (`ModelWizApp.CSS_PATH`): it can be the first screen.
    BINDINGS: ClassVar[list[BindingType]] = [Binding(k, a, t) for k, a, t, _ in ACTIONS]

    def __init__(self, service: WizardService, state: WizardState) -> None:
        super().__init__()
        self.service = service
        self.state = state
        self.server: ServerView | None = None
        self.models: tuple[HomeModel, ...] = ()
        self.gpus: tuple[GpuUse, ...] = ()
        self.refreshed = 0  # how many looks have landed (tests wait on it)
        self._cancel = threading.Event()
        self._polling = threading.Lock()

    def compose(self) -> ComposeResult:
        yield Header()
        with VerticalScroll(id="body"):
            with Vertical(id="top"):
                yield Static(server_text(None), id="server")
                yield Static(endpoints_text(None), id="endpoints")
            table: DataTable[str | Text] = DataTable(id="models", cursor_type="row", zebra_stripes=True)
            yield table
            yield Static("", id="detail")
            yield Static("", id="gpus")
        notice = Static("", id="notice")
        notice.display = False
        yield notice
        yield Footer()

    def on_mount(self) -> None:
        table = self.query_one("#models", DataTable)
        # Labels and names as Text: shown as written, never parsed as markup (which would also load
        # rich's emoji table before the first frame).
        table.add_columns(*(Text(label) for label in ("Model", "State", "Plan")))
        table.focus()
        self._show_models(first_look(self.state.existing))  # at once; the first look follows it on screen
        self.call_after_refresh(self.look)
        self.set_interval(POLL_S, self.look)

    # -- looking ------------------------------------------------------------------------------
    @work(thread=True, group="home-poll", exit_on_error=False, description="Reading the server and GPUs")
    def look(self) -> None:
        if not self._polling.acquire(blocking=False):
            return  # the previous look is still out (podman slow to answer): skip this one
        try:
            server = self.service.server_status()
            models = self.service.home_models(server)
            inventory = self.state.inventory
            gpus = self.service.gpu_use(inventory) if inventory is not None else ()
        except Exception as error:  # noqa: BLE001 - shown in the notice line; the next look tries again
            self.post_message(ActionFailed(error))
            return
        finally:
            self._polling.release()
        self.post_message(HomeRefreshed(server, models, gpus))

    def on_home_refreshed(self, message: HomeRefreshed) -> None:
        self.server, self.gpus = message.server, message.gpus
        self.app.server = message.server  # type: ignore[attr-defined]  # the exit summary's look
        self.query_one("#server", Static).update(server_text(self.server))
        self.query_one("#endpoints", Static).update(endpoints_text(self.server))
        self.query_one("#gpus", Static).update(gpus_text(self.gpus))
        self._show_models(message.models)
        self.refreshed += 1

    def _show_models(self, models: tuple[HomeModel, ...]) -> None:
        self.models = models
        table = self.query_one("#models", DataTable)
        row = table.cursor_row
        table.clear()
        for m in models:
            table.add_row(Text(m.name), state_cell(m), Text(plan_cell(m.plan)), key=m.name)
        if models:
            table.move_cursor(row=min(row, len(models) - 1))
        self._show_detail()

    @on(DataTable.RowHighlighted, "#models")
    def _row_changed(self) -> None:
        self._show_detail()

    def _show_detail(self) -> None:
        self.query_one("#detail", Static).update(detail_text(self.selected()))

    def selected(self) -> HomeModel | None:
        if not self.models:
            return None
        row = self.query_one("#models", DataTable).cursor_row
        return self.models[min(max(row, 0), len(self.models) - 1)]

    # -- results of actions ----------------------------------------------------------------------
    def say(self, text: Text | str) -> None:
        notice = self.query_one("#notice", Static)
        notice.update(text)
        notice.display = bool(str(text))

    def on_action_done(self, message: ActionDone) -> None:
        self.say(Text(message.text))
        self.look()

    def on_action_failed(self, message: ActionFailed) -> None:
        self.say(error_text(message.error))
        if message.look_again:
            self.look()

    def _needs(self, *, running: bool = False) -> HomeModel | None:
        """The selected model; None after saying what is missing and what to do."""
        chosen = self.selected()
        if chosen is None:
            self.say("no model is selected: add one with a")
            return None
        if running and (self.server is None or not self.server.running):
            self.say("the server is not running: launch it with l (or `modelwiz up`)")
            return None
        return chosen

    @work(thread=True, group="home-action", exit_on_error=False, description="Working")
    def run_job(self, job: Callable[[], str]) -> None:
        try:
            text = job()
        except Exception as error:  # noqa: BLE001 - every failure is a line with its fix
            self.post_message(ActionFailed(error))
            return
        self.post_message(ActionDone(text))

    # -- the actions --------------------------------------------------------------------------
    def action_add(self) -> None:
        self.dismiss(HomeResult("add"))

    def action_resume(self) -> None:
        model = self._needs()
        if model is None:
            return
        try:
            self.dismiss(resume_choice(model))
        except ModelwizError as error:
            self.say(error_text(error))

    def action_launch(self) -> None:
        if any(w.group == "launch" and w.is_running for w in self.app.workers):
            self.say("a launch is already running: its progress shows here")
            return
        self._cancel = threading.Event()
        self.say(Text("launching… (the same as `modelwiz up`)", style="dim"))
        self.launch(self._cancel)

    @work(thread=True, exclusive=True, group="launch", exit_on_error=False, description="Launching")
    def launch(self, cancel: threading.Event) -> None:
        def report(event: LaunchEvent) -> None:
            self.post_message(LaunchProgress(event))

        try:
            endpoints = self.service.relaunch(on_event=report, cancel=cancel)
        except Exception as error:  # noqa: BLE001
            self.post_message(ActionFailed(error, look_again=True))  # the failed model shows its reason
            return
        self.post_message(ActionDone(f"the server is up; ready: {', '.join(endpoints.models)}"))

    def on_launch_progress(self, message: LaunchProgress) -> None:
        event = message.event
        if isinstance(event, PullProgress):
            p = event.progress
            done = f"{format_bytes(p.done_bytes)} / {format_bytes(p.total_bytes)}" if p.total_bytes else ""
            self.say(Text(f"pulling the image {done}", style="dim"))
        elif isinstance(event, ModelState):
            self.say(Text(f"{event.name}: {event.state} {event.detail}".rstrip(), style="dim"))
        elif isinstance(event, LogLine):
            pass  # the log is one key away (g)

    def on_log_read(self, message: LogRead) -> None:
        from screens.home_panels import LogScreen  # the panels load when one opens, as the steps do

        self.say("")
        self.app.push_screen(LogScreen(message.lines))

    def stop_work(self) -> None:
        """Quitting: stop a launch in progress."""
        self._cancel.set()

    def action_reload(self) -> None:
        model = self._needs(running=True)
        if model is not None:
            name = model.name

            def reload() -> str:
                self.service.reload_model(name)
                return f"{name} loaded again"

            self.say(Text(f"loading {name}…", style="dim"))
            self.run_job(reload)

    def action_remove(self) -> None:
        from screens.home_panels import YesNoScreen

        model = self._needs()
        if model is None:
            return
        name = model.name
        remove, delete_weights = remove_questions(model)

        def weights(delete: bool | None) -> None:
            self.run_job(lambda: "; ".join(self.service.remove_model(name, delete_weights=bool(delete))))

        def answer(yes: bool | None) -> None:
            if yes:
                self.app.push_screen(YesNoScreen(delete_weights, "Delete", no="Keep them"), weights)

        self.app.push_screen(YesNoScreen(remove, "Remove"), answer)

    def action_stop(self) -> None:
        from screens.home_panels import YesNoScreen

        def answer(yes: bool | None) -> None:
            if yes:
                self.run_job(
                    lambda: (
                        "server stopped and removed (`modelwiz up` or l starts it again)"
                        if self.service.stop_server()
                        else "no server was running"
                    )
                )

        self.app.push_screen(YesNoScreen("Stop the server? Every model stops answering.", "Stop"), answer)

    def action_chat(self) -> None:
        from screens.home_panels import ChatScreen

        model = self._needs(running=True)
        if model is None or self.server is None or self.server.endpoints is None:
            return
        if model.state != "ready":
            self.say(f"{model.name} is {model.state}, not ready: launch with l, or reload it with o")
            return
        self.app.push_screen(ChatScreen(self.service, self.server.endpoints, model.name))

    def action_copy(self) -> None:
        if self.server is None or not self.server.running or not self.server.lines:
            self.say("the server is not running, so there is no endpoint to copy: launch it with l")
            return
        label, url = self.server.lines[0]
        sent = send_to_clipboard(self.app, url)
        head = "copied (sent to the terminal's clipboard)" if sent else "the terminal cannot take it: copy it by hand"
        self.say(Text.assemble((f"{head}: ", "bold"), url, (f"  ({label}; without OSC 52 select it here)", "dim")))

    def action_log(self) -> None:
        self.say(Text("reading the server log…", style="dim"))
        self.read_log()

    @work(thread=True, exclusive=True, group="home-log", exit_on_error=False, description="Reading the log")
    def read_log(self) -> None:
        try:
            lines = self.service.server_log(200)
        except Exception as error:  # noqa: BLE001
            self.post_message(ActionFailed(error))
            return
        if not lines:
            self.post_message(ActionDone("the server has no log: it is not running (launch it with l)"))
            return
        self.post_message(LogRead(lines))

    # -- the command palette --------------------------------------------------------------------
    def home_commands(self) -> Iterable[SystemCommand]:
        for key, action, title, help_text in ACTIONS:
            yield SystemCommand(f"{title} ({key})", help_text, self._runner(action))

    def _runner(self, action: str) -> Callable[[], Any]:
        return lambda: self.run_action_by_name(action)

    def run_action_by_name(self, action: str) -> None:
        getattr(self, f"action_{action}")()


def send_to_clipboard(app: Any, text: str) -> bool:
    """`App.copy_to_clipboard` (OSC 52); True when the escape went to a terminal. Textual writes
    it only when a driver is attached (textual/app.py, `App.copy_to_clipboard`); whether the
    terminal honours OSC 52 cannot be asked, so the text is always shown as well."""
    app.copy_to_clipboard(text)
    return getattr(app, "_driver", None) is not None
