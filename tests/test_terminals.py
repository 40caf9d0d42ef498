"""Which wizard a terminal gets, run as a user runs it: `modelwiz` in a process whose controlling
terminal is a pseudo-terminal (pty), with stdin or TERM varied."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import subprocess
import sys
import termios
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ALT_SCREEN = b"\x1b[?1049h"  # what a full-screen (Textual) app switches to first


def _take_terminal() -> None:  # in the child: a session of its own, the pty (stdout) as its terminal
    os.setsid()
    fcntl.ioctl(1, termios.TIOCSCTTY, 0)


def run_on_a_terminal(
    *args: str, stdin_is_terminal: bool, env: dict[str, str], until: bytes = b""
) -> tuple[int, bytes]:
    """Run `modelwiz ARGS` with stdout/stderr (and stdin, if asked) on a pty; returns the exit code
    and what it wrote. With `until`, stop it once that text appeared (a wizard waits for answers)."""
    master, slave = pty.openpty()
    full_env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "100", "LINES": "30", **env}
    with open(os.devnull, "rb") as devnull:
        proc = subprocess.Popen(
            [sys.executable, "-m", "wizard", *args],
            stdin=slave if stdin_is_terminal else devnull,
            stdout=slave,
            stderr=slave,
            env=full_env,
            cwd=ROOT,
            preexec_fn=_take_terminal,
        )
    os.close(slave)
    out = b""
    deadline = time.monotonic() + 60
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    chunk = os.read(master, 65536)
                except OSError:  # EIO: the child closed the terminal
                    break
                if not chunk:
                    break
                out += chunk
                if until and until in out:
                    break
            elif proc.poll() is not None:
                break
    finally:
        if proc.poll() is None:
            proc.kill()
        code = proc.wait(timeout=30)
        os.close(master)
    return code, out


def test_no_stdin_exits_2_with_the_non_interactive_command(tmp_path):
    code, out = run_on_a_terminal("--gpus", "L4", stdin_is_terminal=False, env={"TERM": "xterm-256color"})
    text = out.decode(errors="replace")
    assert code == 2, text
    assert "modelwiz add MODEL --yes" in text
    assert "Traceback" not in text and "not seekable" not in text
    assert ALT_SCREEN not in out


def test_term_dumb_gets_the_plain_wizard(tmp_path):
    _, out = run_on_a_terminal(
        "--gpus", "L4", stdin_is_terminal=True, env={"TERM": "dumb", "HF_HUB_OFFLINE": "1"}, until=b"== Models"
    )
    assert b"== Machine" in out, out.decode(errors="replace")
    assert ALT_SCREEN not in out  # no full-screen UI
