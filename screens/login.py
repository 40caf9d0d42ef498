"""Log in to Hugging Face without leaving the wizard: a token typed into a password field, checked
and saved as `modelwiz login` saves it (`WizardService.log_in`). The token is never shown, logged
or kept on the screen once it is used."""

from __future__ import annotations

from typing import ClassVar

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal, Vertical
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Static

from screens.step import error_text
from wizard.hub import TOKENS_URL
from wizard.service import WizardService


class LoginScreen(ModalScreen[str | None]):
    """Returns the user name once logged in, None when cancelled."""

    DEFAULT_CSS = """
    LoginScreen {
        align: center middle;
        & > Vertical {
            width: 72;
            max-width: 100%;
            height: auto;
            border: thick $primary;
            background: $surface;
            padding: 1 2;
        }
        & Static { width: 1fr; height: auto; }
        & Input { margin-top: 1; }
        & Horizontal { height: auto; align-horizontal: right; margin-top: 1; }
        & Button { margin-left: 1; }
    }
    """
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "cancel", "Cancel")]

    def __init__(self, service: WizardService) -> None:
        super().__init__()
        self.service = service

    def compose(self) -> ComposeResult:
        with Vertical():
            yield Static(
                Text.assemble(
                    ("Log in to Hugging Face", "bold"),
                    f"\nPaste an access token from {TOKENS_URL} (read access is enough). It is saved where"
                    " huggingface_hub keeps it, as `modelwiz login` does.",
                )
            )
            yield Input(password=True, placeholder="hf_…", id="token")
            yield Static("", id="login-problem")
            with Horizontal():
                yield Button("Cancel", id="cancel")
                yield Button("Log in", id="login", variant="primary")

    def on_mount(self) -> None:
        self.query_one("#token", Input).focus()

    @on(Input.Submitted, "#token")
    @on(Button.Pressed, "#login")
    def submit(self) -> None:
        field = self.query_one("#token", Input)
        token = field.value
        field.value = ""  # not kept on screen
        self.query_one("#login-problem", Static).update(Text("Checking the token with the Hub…", style="dim"))
        self.query_one("#login", Button).disabled = True
        self.check(token)

    @work(thread=True, exclusive=True, group="login", exit_on_error=False, description="Logging in")
    def check(self, token: str) -> None:
        try:
            user = self.service.log_in(token)
        except Exception as error:  # noqa: BLE001 - shown with its fix, the token never
            self.app.call_from_thread(self._refused, error)
            return
        self.app.call_from_thread(self.dismiss, user)

    def _refused(self, error: Exception) -> None:
        self.query_one("#login-problem", Static).update(error_text(error))
        self.query_one("#login", Button).disabled = False
        self.query_one("#token", Input).focus()

    @on(Button.Pressed, "#cancel")
    def action_cancel(self) -> None:
        self.dismiss(None)
