"""End to end: the real `modelwiz` (python3 -m wizard) in tmux, driven by keys to the plan screen.

Nothing is swapped: the real core talks to the fake Hub on 127.0.0.1 (HF_ENDPOINT, as a user's
mirror would be set), the GPUs are described with --gpus, and terminal, driver, keys and screens
are the real ones.
"""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fixtures_screens import SEED_GPUS, seeded_repository

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")
# A tmux server of this test run's own: sessions of other runs on the machine never see its keys.
SERVER = f"modelwiz-e2e-{os.getpid()}"


def tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SERVER, *args], capture_output=True, text=True, check=True, timeout=10).stdout


def appears(session: str, text: str, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if text in tmux("capture-pane", "-p", "-t", session):
            return True
        time.sleep(0.1)
    return False


def wait_for_text(session: str, text: str, timeout: float = 20.0) -> str:
    deadline = time.monotonic() + timeout
    screen = ""
    while time.monotonic() < deadline:
        screen = tmux("capture-pane", "-p", "-t", session)
        if text in screen:
            return screen
        time.sleep(0.1)
    raise AssertionError(f"{text!r} never appeared; screen:\n{screen}")


def start(session: str, tmp_path: Path, hub_env: dict[str, str], args: str, **extra: str) -> None:
    """`python3 -m wizard ARGS` in a 100x30 tmux pane (kept 30 s after it exits, to read)."""
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
        **extra,
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
        f"env {command} {shlex.quote(sys.executable)} -m wizard {args}; sleep 30",
    )


def test_real_binary_to_plan_screen(tmp_path, hub_env):
    session = f"modelwiz-e2e-{tmp_path.name}"
    start(session, tmp_path, hub_env, "--gpus 2xH100-80GB")
    try:
        wait_for_text(session, "Checks")
        wait_for_text(session, "Disk")
        tmux("send-keys", "-t", session, "C-n")
        wait_for_text(session, "Popular models")
        wait_for_text(session, "org/tiny-chat")  # from the Hub, most downloaded first
        tmux("send-keys", "-t", session, "-l", "tiny-chat")
        wait_for_text(session, "Results for")
        tmux("send-keys", "-t", session, "Enter")  # to the result list
        # The search box hands the focus to the list in its Submitted handler, which may run after
        # the next key is read: then that Enter lands in the search box again, as a user's would.
        for _ in range(3):
            tmux("send-keys", "-t", session, "Enter")  # pick the highlighted model
            if appears(session, "+ org/tiny-chat", timeout=5.0):
                break
        wait_for_text(session, "+ org/tiny-chat")
        tmux("send-keys", "-t", session, "C-n")
        wait_for_text(session, "Memory per GPU")
        wait_for_text(session, "✔ fits")  # the real planner's answer
        screen = wait_for_text(session, "GPU 0 · NVIDIA H100 80GB HBM3")  # the bars mount just after
        assert "KIND_GPU" in screen and "tiny-chat" in screen
        tmux("send-keys", "-t", session, "q")
    finally:
        subprocess.run(["tmux", "-L", SERVER, "kill-server"], capture_output=True, timeout=10)


def test_real_binary_rerun_lands_on_home_and_prints_the_way_on(tmp_path, hub_env):
    """A repository with a model (written by the real add session): the re-run opens on the home
    screen; launching without podman says why and the fix; quitting prints what to run next."""
    seeded_repository(tmp_path / "repo", finished=True)
    session = f"modelwiz-e2e-home-{tmp_path.name}"
    start(session, tmp_path, hub_env, f"--gpus {SEED_GPUS}", CONTAINER_HOST=f"unix://{tmp_path}/no-podman.sock")
    try:
        wait_for_text(session, "not running")
        screen = wait_for_text(session, "tiny")
        assert "stopped" in screen and "GPU 0" in screen and "planned" in screen
        tmux("send-keys", "-t", session, "l")
        wait_for_text(session, "fix:")  # the way forward, not a dead end
        tmux("send-keys", "-t", session, "q")
        screen = wait_for_text(session, "The server is not running: `modelwiz up` starts it.")
        assert "modelwiz status" in screen  # printed on the normal screen, after the UI is gone
    finally:
        subprocess.run(["tmux", "-L", SERVER, "kill-server"], capture_output=True, timeout=10)
