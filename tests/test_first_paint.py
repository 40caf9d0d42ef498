"""The wizard's first useful screen comes without a wait: a first run reads the GPUs before the
machine step opens (described GPUs are pure, NVML takes milliseconds), so the step's first frame
shows them while its worker reads them again and runs the checks.

The step reads them again on purpose: it is also reached by Back, minutes after the first look,
and free memory changes; the second read happens after the first frame, off its path."""

from __future__ import annotations

import argparse
import threading
from dataclasses import dataclass, field

from textual.widgets import Button

from screens.app import build_app, first_look
from screens.machine import MachineScreen
from tests.fixtures_screens import FakeService, screen_name, text_of, wait_for
from wizard.gpus import GpuInventory, NvmlError
from wizard.service import ExistingModel
from wizard.wizard_state import WizardState


def test_a_first_run_knows_the_gpus_before_its_first_step(tmp_path):
    service = FakeService(repository=tmp_path / "models")
    state = first_look(service, WizardState(spec="2xH100-80GB"))
    assert state.inventory is not None and len(state.inventory.gpus) == 2
    assert ("load_inventory", "2xH100-80GB") in service.calls


def test_gpus_that_cannot_be_read_are_left_to_the_machine_step(tmp_path):
    service = FakeService(
        repository=tmp_path / "models",
        spec=None,
        nvml_error=NvmlError("NVML could not be loaded", hint="install the NVIDIA driver"),
    )
    assert first_look(service, WizardState(spec=None)).inventory is None  # the step says why


def test_a_rerun_reads_them_once_as_before(tmp_path):
    existing = (ExistingModel(name="m", source="org/m", plan=None, revision=None, complete=True),)
    service = FakeService(repository=tmp_path / "models", existing=existing)
    state = first_look(service, WizardState(spec="H100-80GB"))
    assert state.inventory is not None
    assert [c for c in service.calls if c[0] == "load_inventory"] == [("load_inventory", "H100-80GB")]


@dataclass
class SlowRereadService(FakeService):
    """The machine step's own read of the GPUs waits until `reread` is set."""

    reread: threading.Event = field(default_factory=threading.Event)
    reads: int = 0

    def load_inventory(self, spec: str | None) -> GpuInventory:
        self.reads += 1
        if self.reads > 1:
            self.reread.wait(10)
        return super().load_inventory(spec)


async def test_the_machine_step_shows_the_gpus_before_its_worker_reads_them(tmp_path):
    service = SlowRereadService(repository=tmp_path / "models")
    app = build_app(service, argparse.Namespace(gpus="2xH100-80GB"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "MachineScreen" and service.reads == 2)
        assert "H100" in text_of(app, "#gpus")  # while the step's own read is still waiting
        assert not app.screen.query_one("#gpu-loading").display
        service.reread.set()
        await wait_for(
            pilot, lambda: isinstance(app.screen, MachineScreen) and app.screen.checks_done, groups=("machine",)
        )
        assert "H100" in text_of(app, "#gpus") and service.reads == 2


async def test_the_machine_steps_first_frame_holds_the_gpus_and_its_buttons_follow(tmp_path):
    """With the GPUs known, Quit and Continue are mounted after the step's first frame and before
    its checks start; the row to describe GPUs exists only once they could not be read."""
    service = SlowRereadService(repository=tmp_path / "models")
    app = build_app(service, argparse.Namespace(gpus="2xH100-80GB"))
    async with app.run_test(size=(100, 30)) as pilot:
        await wait_for(pilot, lambda: screen_name(app) == "MachineScreen" and service.reads == 2)
        screen = app.screen
        assert "H100" in text_of(app, "#gpus")
        assert screen.query_one("#continue", Button).disabled  # until the checks are done
        assert not screen.query("#describe")
        service.reread.set()
        await wait_for(pilot, lambda: isinstance(screen, MachineScreen) and screen.checks_done, groups=("machine",))
        assert not screen.query_one("#continue", Button).disabled
        assert not screen.query("#describe")
