"""End to end: the real `python3 -m wizard` in tmux, driven by keys to the plan screen.

The Hub is not reachable here, so the run uses the fake backend through a tiny launcher script
that builds the app with `build_app` exactly as `run_app` does; everything else (terminal,
driver, keys, screens) is real.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

LAUNCH = """
import sys
sys.path.insert(0, {root!r})
from tests.fixtures_screens import FakeBackend
import wizard.backend
wizard.backend.CoreBackend = lambda spec=None, **kw: FakeBackend(spec=spec)
from wizard.cli import main
sys.exit(main(["--gpus", "2xH100-80GB"]))
"""


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True, timeout=10).stdout


def wait_for_text(session: str, text: str, timeout: float = 15.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")


def test_real_binary_to_plan_screen(tmp_path):
    script = tmp_path / "run_modelwiz.py"
    script.write_text(LAUNCH.format(root=str(ROOT)))
    session = f"modelwiz-e2e-{tmp_path.name}"
    env = f"HOME={tmp_path} XDG_CONFIG_HOME={tmp_path}/c XDG_CACHE_HOME={tmp_path}/k HF_HOME={tmp_path}/hf"
    tmux("new-session", "-d", "-s", session, "-x", "100", "-y", "30",
         f"env {env} TERM=xterm-256color {sys.executable} {script}; sleep 30")
    try:
        wait_for_text(session, "All set.")
        tmux("send-keys", "-t", session, "C-n")
        wait_for_text(session, "Popular models")
        tmux("send-keys", "-t", session, "-l", "mistral")
        wait_for_text(session, "Results for")
        tmux("send-keys", "-t", session, "Enter")      # to the result list
        tmux("send-keys", "-t", session, "Enter")      # pick the highlighted model
        wait_for_text(session, "+ mistral-7b-instruct-v0.3")
        tmux("send-keys", "-t", session, "C-n")
        wait_for_text(session, "Memory per GPU")
        screen = wait_for_text(session, "✔ fits")
        assert "GPU 0 · NVIDIA H100 80GB HBM3" in screen
        tmux("send-keys", "-t", session, "q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=10)
