"""End to end: the real `modelwiz` (python3 -m wizard) in tmux, driven by keys to the plan screen.

Nothing is swapped: the real core talks to the fake Hub on 127.0.0.1 (HF_ENDPOINT, as a user's
mirror would be set), the GPUs are described with --gpus, and terminal, driver, keys and screens
are the real ones.
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", *args], capture_output=True, text=True, check=True, timeout=10).stdout


def wait_for_text(session: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")


def test_real_binary_to_plan_screen(tmp_path, hub_env):
    session = f"modelwiz-e2e-{tmp_path.name}"
    env = {
        **{
            k: hub_env[k]
            for k in (
                "HF_ENDPOINT",
                "HF_HUB_DISABLE_XET",
                "HF_HUB_CACHE",
                "HF_TOKEN_PATH",
                "HF_HUB_DISABLE_TELEMETRY",
                "HF_HUB_DISABLE_UPDATE_CHECK",
            )
        },
        "PYTHONPATH": str(ROOT),
        "HOME": str(tmp_path),
        "XDG_CONFIG_HOME": f"{tmp_path}/c",
        "XDG_CACHE_HOME": f"{tmp_path}/k",
        "HF_HOME": f"{tmp_path}/hf",
        "MODEL_REPOSITORY": f"{tmp_path}/repo",
        "TERM": "xterm-256color",
    }
    command = " ".join(f"{k}={shlex.quote(v)}" for k, v in env.items())
    tmux(
        "new-session",
        "-d",
        "-s",
        session,
        "-x",
        "100",
        "-y",
        "30",
        f"env {command} {shlex.quote(sys.executable)} -m wizard --gpus 2xH100-80GB; sleep 30",
    )
    try:
        wait_for_text(session, "Checks")
        wait_for_text(session, "Disk")
        tmux("send-keys", "-t", session, "C-n")
        wait_for_text(session, "Popular models")
        wait_for_text(session, "org/tiny-chat")  # from the Hub, most downloaded first
        tmux("send-keys", "-t", session, "-l", "tiny-chat")
        wait_for_text(session, "Results for")
        tmux("send-keys", "-t", session, "Enter")  # to the result list
        tmux("send-keys", "-t", session, "Enter")  # pick the highlighted model
        wait_for_text(session, "+ org/tiny-chat")
        tmux("send-keys", "-t", session, "C-n")
        wait_for_text(session, "Memory per GPU")
        screen = wait_for_text(session, "✔ fits")  # the real planner's answer
        assert "GPU 0 · NVIDIA H100 80GB HBM3" in screen
        assert "KIND_GPU" in screen and "tiny-chat" in screen
        tmux("send-keys", "-t", session, "q")
    finally:
        subprocess.run(["tmux", "kill-session", "-t", session], capture_output=True, timeout=10)
