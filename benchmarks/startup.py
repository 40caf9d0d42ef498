"""Time from process start to the first painted frame: `modelwiz` vs a bare Textual app.

Each program runs in a pseudo-terminal (80x24); the clock stops when a marker text of its first
frame appears in the terminal output. Both run alternately in the same session, several times;
the script prints the medians and the ratio (target: modelwiz / bare <= 1.3).

    python3 benchmarks/startup.py [--runs 7]
"""

from __future__ import annotations

import argparse
import fcntl
import os
import pty
import select
import signal
import statistics
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

BARE_APP = """
from textual.app import App
from textual.widgets import Label

class Bare(App):
    def compose(self):
        yield Label("bare-textual-ready")

Bare().run()
"""


def first_paint_seconds(argv: list[str], marker: bytes, env: dict[str, str], timeout: float = 30.0) -> float:
    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, stdin=slave, stdout=slave, stderr=slave, cwd=ROOT, env=env, start_new_session=True, close_fds=True
    )
    os.close(slave)
    seen = b""
    try:
        while time.perf_counter() - start < timeout:
            ready, _, _ = select.select([master], [], [], 0.05)
            if not ready:
                continue
            try:
                chunk = os.read(master, 65536)
            except OSError:
                break
            seen += chunk
            if marker in seen:
                return time.perf_counter() - start
        raise RuntimeError(f"{argv} never painted {marker!r}; output tail: {seen[-400:]!r}")
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    args = parser.parse_args()
    home = tempfile.mkdtemp(prefix="modelwiz-bench-")
    env = dict(
        os.environ,
        HOME=home,
        XDG_CONFIG_HOME=f"{home}/.config",
        XDG_CACHE_HOME=f"{home}/.cache",
        HF_HOME=f"{home}/hf",
        PYTHONPATH=str(ROOT),
        TERM="xterm-256color",
        PYTHONDONTWRITEBYTECODE="",
    )
    env.pop("TEXTUAL", None)
    modelwiz = [sys.executable, "-m", "wizard", "--gpus", "2xH100-80GB"]
    bare = [sys.executable, "-c", BARE_APP]
    # one warm-up each, so both read their .pyc files from the page cache
    first_paint_seconds(modelwiz, b"GPU workstation", env)
    first_paint_seconds(bare, b"bare-textual-ready", env)
    wiz_times, bare_times, machine_times = [], [], []
    for _ in range(args.runs):
        wiz_times.append(first_paint_seconds(modelwiz, b"GPU workstation", env))
        bare_times.append(first_paint_seconds(bare, b"bare-textual-ready", env))
        machine_times.append(first_paint_seconds(modelwiz, b"Checks", env))
    wiz, base = statistics.median(wiz_times), statistics.median(bare_times)
    print(f"runs: {args.runs} each, 80x24 pty, Python {sys.version.split()[0]}")
    print(f"modelwiz first paint: median {wiz * 1000:.0f} ms (min {min(wiz_times) * 1000:.0f})")
    print(f"bare Textual label:   median {base * 1000:.0f} ms (min {min(bare_times) * 1000:.0f})")
    print(f"modelwiz machine screen painted: median {statistics.median(machine_times) * 1000:.0f} ms")
    print(f"ratio: {wiz / base:.2f} (target <= 1.3)")
    return 0 if wiz / base <= 1.3 else 1


if __name__ == "__main__":
    raise SystemExit(main())
