"""Text rendering of download progress for the command line (no UI library): one redrawn bar on a
terminal, plain lines (at most one every few seconds, plus file ends) otherwise."""

from __future__ import annotations

import shutil
import threading
import time
from typing import TextIO

from wizard.progress import ProgressEvent
from wizard.units import format_bytes, format_duration, format_rate


def describe(event: ProgressEvent) -> str:
    """`12.0 MiB / 40.0 MiB (30%)  3/8 files  5.1 MiB/s  ETA 6s  model-00001.safetensors`."""
    parts = [f"{format_bytes(event.done_bytes)} / {format_bytes(event.total_bytes)}"]
    if event.fraction is not None:
        parts[0] += f" ({event.fraction * 100:.0f}%)"
    if event.files_total:
        parts.append(f"{event.files_done}/{event.files_total} files")
    if event.rate_bytes_per_s is not None:
        parts.append(format_rate(event.rate_bytes_per_s))
    if not event.finished and event.eta_s is not None:
        parts.append(f"ETA {format_duration(event.eta_s)}")
    if event.current and not event.finished:
        parts.append(event.current)
    if event.message:
        parts.append(event.message)
    return "  ".join(parts)


class _Printer:
    def __init__(self, stream: TextIO, tty: bool, interval_s: float) -> None:
        self.stream = stream
        self.tty = tty
        self.interval_s = interval_s
        self._last = float("-inf")
        self._last_files = -1
        self._drawn = False
        self._lock = threading.Lock()

    def __call__(self, event: ProgressEvent) -> None:
        with self._lock:
            if self.tty:
                self._bar(event)
            else:
                self._line(event)

    def _bar(self, event: ProgressEvent) -> None:
        width = shutil.get_terminal_size((80, 20)).columns
        frac = event.fraction or 0.0
        text = describe(event)
        bar_w = max(10, min(30, width - len(text) - 4))
        filled = int(bar_w * frac)
        line = f"[{'#' * filled}{'.' * (bar_w - filled)}] {text}"[: width - 1]
        self.stream.write("\r\x1b[2K" + line)
        if event.finished:
            self.stream.write("\n")
            self._drawn = False
        else:
            self._drawn = True
        self.stream.flush()

    def _line(self, event: ProgressEvent) -> None:
        now = time.monotonic()
        if (
            event.finished
            or event.message
            or event.files_done != self._last_files
            or now - self._last >= self.interval_s
        ):
            self._last, self._last_files = now, event.files_done
            self.stream.write(describe(event) + "\n")
            self.stream.flush()

    def close(self) -> None:
        with self._lock:
            if self._drawn:
                self.stream.write("\n")
                self.stream.flush()
                self._drawn = False


def progress_printer(stream: TextIO, *, tty: bool | None = None, interval_s: float = 5.0) -> _Printer:
    """A ProgressCallback that draws on `stream`; call `.close()` when done (ends the bar's line)."""
    if tty is None:
        tty = bool(getattr(stream, "isatty", lambda: False)())
    return _Printer(stream, tty, interval_s)
