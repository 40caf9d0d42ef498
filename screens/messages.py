"""Messages that thread workers post to the UI. Workers never touch widgets; handlers do.

Each is a dataclass (Textual's `Message.__post_init__` runs after the generated `__init__`).
High-rate progress messages define `can_replace`, so a flood coalesces to the latest one.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.message import Message

from wizard.gpus import GpuInventory
from wizard.progress import ProgressEvent
from wizard.service import Check, Endpoints, LaunchEvent, ModelCandidate, ModelDetails, PlanView, PullProgress


@dataclass
class InventoryLoaded(Message):
    inventory: GpuInventory


@dataclass
class InventoryFailed(Message):
    error: Exception


@dataclass
class CheckDone(Message):
    check: Check


@dataclass
class ChecksFinished(Message):
    pass


@dataclass
class SearchResults(Message):
    query: str
    results: list[ModelCandidate]


@dataclass
class DetailsLoaded(Message):
    details: ModelDetails


@dataclass
class PlanComputed(Message):
    plan: PlanView


@dataclass
class StepFailed(Message):
    """A worker of the current screen failed; the screen shows why."""

    error: Exception


@dataclass
class DownloadProgress(Message):
    index: int
    event: ProgressEvent

    def can_replace(self, message: Message) -> bool:
        return isinstance(message, DownloadProgress) and message.index == self.index


@dataclass
class DownloadFinished(Message):
    cancelled: bool


@dataclass
class LaunchProgress(Message):
    """An event from the launcher: image pull progress, a log line or a model's state."""

    event: LaunchEvent

    def can_replace(self, message: Message) -> bool:
        return (
            isinstance(message, LaunchProgress)
            and isinstance(self.event, PullProgress)
            and isinstance(message.event, PullProgress)
        )


@dataclass
class LaunchFinished(Message):
    endpoints: Endpoints


@dataclass
class ReplyChunk(Message):
    text: str


@dataclass
class ReplyFinished(Message):
    pass
