"""Progress events shared by downloads and image pulls.

The core reports progress through a callback that takes a `ProgressEvent`; it never prints. The
TUI turns events into messages, the plain mode into lines, a log into log records.
"""

from __future__ import annotations

import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class ProgressEvent:
    """A snapshot of one long operation (a model download, an image pull)."""

    task: str  # what is being done, e.g. "download meta-llama/Llama-2-7b-hf"
    done_bytes: int  # bytes done so far, across all files / layers
    total_bytes: int | None  # None while unknown
    current: str | None = None  # the file or layer being worked on
    files_done: int = 0
    files_total: int | None = None
    rate_bytes_per_s: float | None = None
    eta_s: float | None = None
    finished: bool = False
    message: str | None = None  # a human note: "resuming", "already on disk", ...
    current_done_bytes: int | None = None  # progress within `current`, when known
    current_total_bytes: int | None = None

    @property
    def fraction(self) -> float | None:
        if not self.total_bytes:
            return None
        return min(1.0, self.done_bytes / self.total_bytes)


ProgressCallback = Callable[[ProgressEvent], None]


def ignore_progress(event: ProgressEvent) -> None:  # the default callback
    return None


class RateMeter:
    """Bytes per second over a sliding window, and the ETA that follows. Thread-safe."""

    def __init__(self, window_s: float = 5.0, clock: Callable[[], float] = time.monotonic) -> None:
        self._window = window_s
        self._clock = clock
        self._samples: deque[tuple[float, int]] = deque()
        self._lock = threading.Lock()

    def add(self, done_bytes: int) -> None:
        now = self._clock()
        with self._lock:
            self._samples.append((now, done_bytes))
            while len(self._samples) > 2 and now - self._samples[0][0] > self._window:
                self._samples.popleft()

    def rate(self) -> float | None:
        with self._lock:
            if len(self._samples) < 2:
                return None
            (t0, b0), (t1, b1) = self._samples[0], self._samples[-1]
        if t1 <= t0:
            return None
        return max(0.0, (b1 - b0) / (t1 - t0))

    def eta(self, done_bytes: int, total_bytes: int | None) -> float | None:
        rate = self.rate()
        if not total_bytes or not rate:
            return None
        return max(0.0, (total_bytes - done_bytes) / rate)
