"""The home screen's panels over it: a yes/no question, a chat with one model, the server log."""

from __future__ import annotations

from collections.abc import Sequence
from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical, VerticalScroll
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Log, Static

from screens.confirm import ConfirmScreen
from screens.messages import ReplyChunk, ReplyFinished, StepFailed
from screens.step import error_text
from wizard.conversation import RESET
from wizard.service import Chat, Endpoints, WizardService

PANEL_CSS = """
%s {
    align: center middle;
    & > Vertical {
        width: 90%%;
        max-width: 120;
        height: auto;
        max-height: 90%%;
        border: thick $accent;
        background: $surface;
        padding: 0 1;
    }
    & Horizontal { height: auto; align-horizontal: right; }
    & Button { margin-left: 1; }
}
"""


class YesNoScreen(ConfirmScreen):
    """A question with the action's own word on its button (Esc or n: no)."""

    DEFAULT_CSS = PANEL_CSS % "YesNoScreen"

    def __init__(self, question: str, verb: str, *, no: str = "Cancel") -> None:
        super().__init__(question, yes=f"{verb} (y)", no=f"{no} (n)")


class LogScreen(ModalScreen[None]):
    """The server's last log lines (Esc closes)."""

    DEFAULT_CSS = PANEL_CSS % "LogScreen" + "LogScreen Log { height: 20; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, lines: Sequence[str]) -> None:
        super().__init__()
        self.lines = tuple(lines)

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"The server's last {len(self.lines)} log lines (Esc closes)")
            yield Log(id="log", auto_scroll=True)

    def on_mount(self) -> None:
        self.query_one("#log", Log).write_lines(self.lines)


class ChatScreen(ModalScreen[None]):
    """A conversation with one model, streamed (Esc closes, /reset starts again). It goes the way
    `modelwiz chat` goes (wizard.chat_session): the OpenAI API when the model chats there with its own
    template, else its own template over /v2, else raw text, which the route line says."""

    DEFAULT_CSS = PANEL_CSS % "ChatScreen" + "ChatScreen #reply-box { height: auto; max-height: 16; }"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "dismiss", "Close")]

    def __init__(self, service: WizardService, endpoints: Endpoints, model: str) -> None:
        super().__init__()
        self.service = service
        self.endpoints = endpoints
        self.model = model
        self.chat: Chat | None = None  # opened with the first message
        self.reply = ""
        self.streaming = False

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Label(f"Chat with {self.model} (Esc closes, {RESET} starts again)")
            yield Static("", id="route")
            yield Input(placeholder="Ask something and press Enter", id="prompt")
            with VerticalScroll(id="reply-box"):
                yield Static("", id="reply")
            yield Static("", id="stats")

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()

    @on(Input.Submitted, "#prompt")
    def ask(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt or self.streaming:
            return
        event.input.value = ""
        if prompt == RESET:
            if self.chat is not None:
                self.chat.reset()
            self.query_one("#reply", Static).update(Text("(conversation reset)", style="dim"))
            self.query_one("#stats", Static).update("")
            return
        self.reply = ""
        self.streaming = True
        self.query_one("#reply", Static).update(Text("…", style="dim"))
        self.query_one("#stats", Static).update("")
        self.stream(prompt)

    @work(thread=True, exclusive=True, group="reply", exit_on_error=False, description="Asking the model")
    def stream(self, prompt: str) -> None:
        try:
            if self.chat is None:
                self.chat = self.service.open_chat(self.endpoints, self.model)
                self.app.call_from_thread(self.show_route, self.chat)
            for piece in self.chat.send(prompt):
                self.post_message(ReplyChunk(piece))
        except Exception as error:  # noqa: BLE001 - shown in place of the reply
            self.post_message(StepFailed(error))
            return
        self.post_message(ReplyFinished())

    def show_route(self, chat: Chat) -> None:
        self.query_one("#route", Static).update(Text("\n".join(chat.notes), style="dim"))

    def on_reply_chunk(self, message: ReplyChunk) -> None:
        self.reply += message.text
        self.query_one("#reply", Static).update(Text(self.reply))

    def on_reply_finished(self, _message: ReplyFinished) -> None:
        self.streaming = False
        self.query_one("#reply", Static).update(Text(self.reply or "(empty reply)"))
        if self.chat is not None and self.chat.stats:
            self.query_one("#stats", Static).update(Text(f"[{self.chat.stats}]", style="dim"))

    def on_step_failed(self, message: StepFailed) -> None:
        self.streaming = False
        self.query_one("#reply", Static).update(error_text(message.error))
