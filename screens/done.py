"""Step 6: the server is up. Endpoints, a copyable curl, and a prompt box that streams a reply."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Input, Select, Static, TextArea

from screens.messages import ReplyChunk, ReplyFinished, StepFailed
from screens.step import StepScreen, error_text
from wizard.endpoints import EndpointsView, render_endpoints
from wizard.service import Endpoints, WizardService, curl_command
from wizard.wizard_flow import DoneResult
from wizard.wizard_state import WizardState


def done_endpoints(e: Endpoints) -> EndpointsView:
    return EndpointsView(
        http=e.http,
        grpc=e.grpc,
        metrics=e.metrics,
        openai=e.openai,
        models=e.models,
        chat={m: m not in e.completions_only for m in e.models},
    )


class DoneScreen(StepScreen[DoneResult]):
    STEP = "done"
    CSS_PATH = "done.tcss"
    BINDINGS: ClassVar[list[BindingType]] = [Binding("ctrl+y", "copy_curl", "Copy curl")]

    def __init__(self, service: WizardService, state: WizardState) -> None:
        super().__init__(service, state)
        assert state.endpoints is not None
        self.endpoints = state.endpoints
        self.models = list(self.endpoints.models) or [m.name for m in (state.plan.models if state.plan else ())]
        self.model = self.models[0] if self.models else ""
        self.reply = ""

    def compose(self) -> ComposeResult:
        e = self.endpoints
        yield from self.compose_chrome()
        with VerticalScroll(id="body"):
            yield Static("Triton is running", classes="section-title")
            if e.openai:
                # The one endpoints renderer (OpenAI first, with curl and SDK examples, then /v2).
                yield Static(Text("\n".join(render_endpoints(done_endpoints(e), self.model or None))), id="endpoints")
            else:
                yield Static(
                    Text.assemble(
                        ("HTTP     ", "bold"),
                        e.http,
                        "\n",
                        ("gRPC     ", "bold"),
                        e.grpc,
                        "\n",
                        ("metrics  ", "bold"),
                        e.metrics,
                    ),
                    id="endpoints",
                )
            yield Static("Try it", classes="section-title")
            if len(self.models) > 1:
                yield Select(((m, m) for m in self.models), value=self.model, allow_blank=False, id="model")
            yield TextArea(curl_command(e, self.model), read_only=True, id="curl", soft_wrap=True)
            yield Input(placeholder=f"Ask {self.model} something and press Enter", id="prompt")
            yield Static("", id="reply")
        with Horizontal(classes="actions"):
            yield Button("Copy curl", id="copy")
            yield Button("Finish", id="finish", variant="primary")
        yield from self.compose_footer()

    def on_mount(self) -> None:
        self.query_one("#prompt", Input).focus()

    @on(Select.Changed, "#model")
    def model_changed(self, event: Select.Changed) -> None:
        self.model = str(event.value)
        self.query_one("#curl", TextArea).load_text(curl_command(self.endpoints, self.model))
        self.query_one("#prompt", Input).placeholder = f"Ask {self.model} something and press Enter"

    @on(Input.Submitted, "#prompt")
    def ask(self, event: Input.Submitted) -> None:
        prompt = event.value.strip()
        if not prompt:
            return
        self.reply = ""
        self.query_one("#reply", Static).update(Text("…", style="dim"))
        self.stream(prompt)

    @work(thread=True, exclusive=True, group="reply", exit_on_error=False, description="Asking the model")
    def stream(self, prompt: str) -> None:
        try:
            for piece in self.service.generate_stream(self.endpoints, self.model, prompt):
                self.post_message(ReplyChunk(piece))
        except Exception as error:  # noqa: BLE001
            self.post_message(StepFailed(error))
            return
        self.post_message(ReplyFinished())

    def on_reply_chunk(self, message: ReplyChunk) -> None:
        self.reply += message.text
        self.query_one("#reply", Static).update(Text(self.reply))

    def on_reply_finished(self, _message: ReplyFinished) -> None:
        self.query_one("#reply", Static).update(Text(self.reply or "(empty reply)"))

    def on_step_failed(self, message: StepFailed) -> None:
        self.query_one("#reply", Static).update(error_text(message.error))

    @on(Button.Pressed, "#copy")
    def action_copy_curl(self) -> None:
        curl = self.query_one("#curl", TextArea).text
        # App.copy_to_clipboard only sends OSC 52: whether it arrives is the terminal's choice.
        self.app.copy_to_clipboard(curl)
        self.notify(
            f"{curl}\n\nSent to the terminal's clipboard; if it does not paste, select it in the box above.",
            title="curl command",
            markup=False,
        )

    @on(Button.Pressed, "#finish")
    def action_next(self) -> None:
        self.dismiss(DoneResult())

    def action_back(self) -> None:
        self.notify("The server keeps running; `modelwiz down` stops it. Press Finish or Ctrl+Q to leave.")
