"""Messages that thread workers post to the UI. Workers never touch widgets; handlers do.

Each is a plain `Message` subclass with its own `__init__`, as Textual's own messages are (a
dataclass message costs a tenth of a millisecond to define, and every screen imports these before
its first frame). High-rate progress messages define `can_replace`, so a flood coalesces to the
latest one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual.message import Message

from wizard.gpus import GpuInventory
from wizard.service import Check, Endpoints, LaunchEvent, ModelCandidate, ModelDetails, PlanView, PullProgress

if TYPE_CHECKING:
    from wizard.progress import ProgressEvent


class InventoryLoaded(Message):
    def __init__(self, inventory: GpuInventory) -> None:
        super().__init__()
        self.inventory = inventory


class InventoryFailed(Message):
    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error


class CheckDone(Message):
    def __init__(self, check: Check) -> None:
        super().__init__()
        self.check = check


class ChecksFinished(Message):
    pass


class SearchResults(Message):
    def __init__(self, query: str, results: list[ModelCandidate]) -> None:
        super().__init__()
        self.query = query
        self.results = results


class DetailsLoaded(Message):
    def __init__(self, details: ModelDetails) -> None:
        super().__init__()
        self.details = details


class PlanComputed(Message):
    def __init__(self, plan: PlanView) -> None:
        super().__init__()
        self.plan = plan


class StepFailed(Message):
    """A worker of the current screen failed; the screen shows why."""

    def __init__(self, error: Exception) -> None:
        super().__init__()
        self.error = error


class DownloadProgress(Message):
    def __init__(self, index: int, event: ProgressEvent) -> None:
        super().__init__()
        self.index = index
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DownloadProgress) and message.index == self.index


class DownloadFinished(Message):
    def __init__(self, cancelled: bool) -> None:
        super().__init__()
        self.cancelled = cancelled


class LaunchProgress(Message):
    """An event from the launcher: image pull progress, a log line or a model's state."""

    def __init__(self, event: LaunchEvent) -> None:
        super().__init__()
        self.event = event

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, LaunchProgress)
            and isinstance(self.event, PullProgress)
            and isinstance(message.event, PullProgress)
        )


class LaunchFinished(Message):
    def __init__(self, endpoints: Endpoints) -> None:
        super().__init__()
        self.endpoints = endpoints


class ReplyChunk(Message):
    def __init__(self, text: str) -> None:
        super().__init__()
        self.text = text


class ReplyFinished(Message):
    pass
