"""Step 1: what this machine has: GPUs (or the NVML problem and a way to describe GPUs instead),
podman, CDI, Hugging Face login, disk. Problems show with their fix; going on is allowed where it
makes sense (plan now, launch later)."""

from __future__ import annotations

from rich.text import Text
from textual import on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, VerticalScroll
from textual.widgets import Button, Footer, Input, LoadingIndicator, Static

from screens.messages import CheckDone, ChecksFinished, InventoryFailed, InventoryLoaded
from screens.step import StepScreen, error_text
from wizard.gpus import GpuInventory
from wizard.service import Check, CheckStatus, WizardService
from wizard.units import format_bytes
from wizard.wizard_flow import MachineResult
from wizard.wizard_state import WizardState

MARKS: dict[CheckStatus, tuple[str, str]] = {"ok": ("✔", "green"), "warn": ("!", "yellow"), "fail": ("✖", "red")}


def gpu_lines(inventory: GpuInventory) -> Text:
    text = Text()
    for gpu in inventory.gpus:
        if text:
            text.append("\n")
        text.append(f"GPU {gpu.index}  ", style="bold")
        text.append(gpu.name)
        text.append(
            f"  {format_bytes(gpu.memory_total_bytes)}, {format_bytes(gpu.memory_free_bytes)} free"
            f"  cc {gpu.compute_capability_str}",
            style="dim",
        )
        for mig in gpu.mig_devices if gpu.mig_enabled else ():
            text.append(f"\n  MIG {mig.cdi_id}  {mig.name}  {format_bytes(mig.memory_total_bytes)}", style="dim")
    where = "described with --gpus" if inventory.source == "described" else f"driver {inventory.driver_version}"
    text.append(f"\n{len(inventory.devices)} device(s), {where}", style="italic dim")
    return text


LOGIN_CHECK = "hf-login"
LOGIN_HERE = "or press Ctrl+L to log in here"


def check_line(check: Check) -> Text:
    mark, colour = MARKS[check.status]
    text = Text()
    text.append(f"{mark} ", style=f"bold {colour}")
    text.append(f"{check.title}: ", style="bold")
    text.append(check.summary)
    if check.hint:
        text.append("\n    fix: ", style="bold dim")
        text.append(check.hint, style="dim")
    if check.key == LOGIN_CHECK and not check.ok:
        text.append(f"\n    {LOGIN_HERE}", style="bold")
    return text


class MachineScreen(StepScreen[MachineResult]):
    STEP = "machine"
    # Its rules (machine.tcss) load with the app's (`ModelWizApp.CSS_PATH`): it is the first step.

    def __init__(self, service: WizardService, state: WizardState) -> None:
        super().__init__(service, state)
        self.spec = state.spec
        # Known before the step opens (read by the app): shown in the first frame, read again.
        self.inventory: GpuInventory | None = state.inventory
        self.checks: list[Check] = []
        self.checks_done = False

    def compose(self) -> ComposeResult:
        yield from self.compose_chrome()
        with VerticalScroll(id="body"):
            yield Static("GPUs", classes="section-title")
            loading = LoadingIndicator(id="gpu-loading")
            loading.display = self.inventory is None
            yield loading
            yield Static(gpu_lines(self.inventory) if self.inventory is not None else "", id="gpus")
            # (the row to describe GPUs goes here when they cannot be read: `describe_row`)
            yield Static("Checks", classes="section-title")
            yield Static(id="checks")
            yield Static("", id="verdict", classes="hint")
        if self.inventory is None:
            yield self.actions()
        yield from self.compose_footer()

    def actions(self) -> Horizontal:
        """Quit and Continue (enabled when the checks are done)."""
        return Horizontal(
            Button("Quit", id="quit"),
            Button("Continue", id="continue", variant="primary", disabled=True),
            classes="actions",
        )

    def on_mount(self) -> None:
        if self.inventory is None:
            self.load(self.spec)
        else:  # the GPUs are on screen already: the buttons and the checks follow the first frame
            self.call_after_refresh(self.after_first_frame)

    async def after_first_frame(self) -> None:
        # (Continue waits for the checks: until then the buttons would only cost the first frame time)
        if not self.is_attached:
            return  # left before its first frame (Ctrl+N at once): nothing to show or check
        await self.mount(self.actions(), before=self.query_one(Footer))
        self.load(self.spec)

    async def describe_row(self) -> Horizontal:
        """The row to describe GPUs instead (mounted the first time the GPUs cannot be read)."""
        for row in self.query("#describe").results(Horizontal):
            return row
        row = Horizontal(
            Input(placeholder="describe GPUs, e.g. 2xH100-80GB", id="spec"),
            Button("Plan for these", id="use-spec"),
            id="describe",
        )
        await self.query_one("#body").mount(row, after="#gpus")
        return row

    # -- workers ------------------------------------------------------------------------------
    @work(thread=True, exclusive=True, group="machine", exit_on_error=False, description="Reading the GPUs")
    def load(self, spec: str | None) -> None:
        inventory: GpuInventory | None = None
        try:
            inventory = self.service.load_inventory(spec)
        except Exception as error:  # noqa: BLE001 - shown on screen with its fix
            self.post_message(InventoryFailed(error))
        else:
            self.post_message(InventoryLoaded(inventory))
        try:
            for check in self.service.machine_checks(inventory):
                self.post_message(CheckDone(check))
        except Exception as error:  # noqa: BLE001 - the screen must still finish and say why
            self.app.call_from_thread(self.notify, f"a machine check failed: {error}", severity="error")
        finally:
            self.post_message(ChecksFinished())

    # -- handlers -----------------------------------------------------------------------------
    def on_inventory_loaded(self, message: InventoryLoaded) -> None:
        self.inventory = message.inventory
        self.query_one("#gpu-loading").display = False
        self.query_one("#gpus", Static).update(gpu_lines(message.inventory))
        self.query("#describe").set(display=False)
        self.query_one("#gpus").remove_class("error-box")

    async def on_inventory_failed(self, message: InventoryFailed) -> None:
        self.inventory = None
        self.query_one("#gpu-loading").display = False
        gpus = self.query_one("#gpus", Static)
        gpus.update(error_text(message.error))
        gpus.add_class("error-box")
        describe = await self.describe_row()
        describe.display = True
        self.query_one("#spec", Input).focus()

    def on_check_done(self, message: CheckDone) -> None:
        self.checks = [c for c in self.checks if c.key != message.check.key] + [message.check]
        body = Text("\n").join(check_line(c) for c in self.checks)
        self.query_one("#checks", Static).update(body)

    def on_checks_finished(self, _message: ChecksFinished) -> None:
        self.checks_done = True
        verdict = self.query_one("#verdict", Static)
        can_go = self.inventory is not None
        self.query_one("#continue", Button).disabled = not can_go
        fails = [c for c in self.checks if c.status == "fail"]
        if not can_go:
            verdict.update("No GPUs to plan for: fix the problem above, or describe the GPUs to plan for.")
        elif fails:
            stops = ", ".join(sorted({c.blocks or "launch" for c in fails}))
            verdict.update(f"You can plan and download now; fix the problems marked ✖ before: {stops}.")
        else:
            verdict.update("All set.")
        if can_go:
            self.query_one("#continue", Button).focus()

    @on(Button.Pressed, "#use-spec")
    @on(Input.Submitted, "#spec")
    def use_spec(self) -> None:
        text = self.query_one("#spec", Input).value.strip()
        if not text:
            self.notify("Type GPUs such as 2xH100-80GB or 24GiB", severity="warning")
            return
        self.spec = text
        self.checks = []
        self.query_one("#checks", Static).update("")
        self.query_one("#gpu-loading").display = True
        self.load(text)

    @on(Button.Pressed, "#continue")
    def action_next(self) -> None:
        if self.inventory is None:
            self.notify("There are no GPUs to plan for yet", severity="warning")
            return
        self.dismiss(MachineResult(self.inventory, tuple(self.checks), self.spec))

    @on(Button.Pressed, "#quit")
    def quit_pressed(self) -> None:
        self.app.action_request_quit()  # type: ignore[attr-defined]
