"""Image pulls: turn podman's pull stream into `ProgressEvent`s (layers, bytes).

`PullTracker` is pure: feed it the decoded records of `images.pull(..., stream=True,
decode=True)` (Docker-compatible shape, podman-py's default) and it returns progress snapshots.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from wizard.errors import ModelwizError
from wizard.progress import ProgressCallback, ProgressEvent, RateMeter, ignore_progress

_DONE_STATES = {"Download complete", "Pull complete", "Already exists", "Extracting"}


@dataclass
class _Layer:
    current: int = 0
    total: int | None = None
    done: bool = False


class PullFailed(ModelwizError):
    pass


class PullTracker:
    def __init__(self, ref: str, clock: Callable[[], float] | None = None) -> None:
        self.ref = ref
        self._layers: dict[str, _Layer] = {}
        self._meter = RateMeter(clock=clock) if clock else RateMeter()
        self.error: str | None = None
        self.image_id: str | None = None

    def feed(self, record: Any) -> ProgressEvent | None:
        """Account for one stream record; the new snapshot, or None when nothing changed."""
        if not isinstance(record, dict):
            return None
        error = record.get("error") or (record.get("errorDetail") or {}).get("message")
        if error:
            self.error = str(error).strip()
            return None
        if record.get("id") and record.get("images"):  # libpod's final record
            self.image_id = str(record["id"])
            return None
        layer_id, status = record.get("id"), str(record.get("status") or "")
        if not layer_id or not status or status.startswith(("Pulling from", "Digest:", "Status:")):
            return None
        layer = self._layers.setdefault(str(layer_id), _Layer())
        detail = record.get("progressDetail") or {}
        if status == "Downloading":
            layer.current = int(detail.get("current") or layer.current)
            if detail.get("total"):
                layer.total = int(detail["total"])
        elif status in _DONE_STATES and not layer.done:
            layer.done = True
            if layer.total:
                layer.current = layer.total
        return self.snapshot(current=str(layer_id), message=status)

    def snapshot(
        self, *, current: str | None = None, message: str | None = None, finished: bool = False
    ) -> ProgressEvent:
        done = sum(layer.current for layer in self._layers.values())
        sizes = [layer.total or (layer.current if layer.done else None) for layer in self._layers.values()]
        total = sum(sizes) if sizes and None not in sizes else None  # type: ignore[arg-type]
        self._meter.add(done)
        return ProgressEvent(
            task=f"pull {self.ref}",
            done_bytes=done,
            total_bytes=total if total else None,
            current=current,
            files_done=sum(1 for layer in self._layers.values() if layer.done),
            files_total=len(self._layers) or None,
            rate_bytes_per_s=self._meter.rate(),
            eta_s=self._meter.eta(done, total),
            finished=finished,
            message=message,
        )


def _pull_hint(ref: str) -> str:
    if ref.startswith("localhost/"):
        return "it is a local image: build or load it first (`podman images` lists what is here)"
    if ref.startswith("nvcr.io/"):
        return "check the tag and the network; NGC may need `podman login nvcr.io` (user $oauthtoken)"
    return "check the name and tag, the network, and `podman login` for private registries"


def ensure_image(client: Any, ref: str, on_progress: ProgressCallback = ignore_progress) -> bool:
    """Make `ref` present: True when it was already there, False after a pull. Raises PullFailed."""
    from podman.errors import APIError

    if client.images.exists(ref):
        return True
    tracker = PullTracker(ref)
    on_progress(ProgressEvent(task=f"pull {ref}", done_bytes=0, total_bytes=None, message="pulling"))
    try:
        for record in client.images.pull(ref, stream=True, decode=True):
            event = tracker.feed(record)
            if event is not None:
                on_progress(event)
    except APIError as error:
        tracker.error = tracker.error or str(getattr(error, "explanation", None) or error)
    if tracker.error or not client.images.exists(ref):
        reason = tracker.error or "the image is still missing after the pull"
        raise PullFailed(f"image {ref} is not here and could not be pulled: {reason}", hint=_pull_hint(ref))
    on_progress(tracker.snapshot(finished=True, message="pulled"))
    return False
