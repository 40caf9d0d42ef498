"""Time from process start to the first *useful* screen: `modelwiz` vs a bare Textual app.

Each program runs in a pseudo-terminal (80x24); the clock stops when a marker text appears in the
terminal output. Measured, alternately in the same session, several times:

- bare: a Textual app that shows one label (the baseline);
- first run: `modelwiz --gpus 2xH100-80GB` over an empty repository, until the machine screen
  shows the GPUs (not the splash);
- re-run: the same over a repository that holds a model, until the home screen lists it (podman
  unreachable, so its server look fails at once: the lower bound of a real re-run);
- the first frame with the header (the subtitle), for reference: the first step's own frame
  when the repository and the GPUs are read in time (the splash carries no header).

It prints the medians and each useful screen's ratio to the bare app (target: <= 1.5).

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


TARGET = 1.5
HOME_MODEL = "bench-model"
# A model folder modelwiz did not write: listed by the repository (so the re-run opens on the home
# screen) without any download or Hub lookup.
HOME_MODEL_CONFIG = f'name: "{HOME_MODEL}"\nbackend: "vllm"\ninstance_group [ {{ kind: KIND_MODEL }} ]\n'


def median_ms(times: list[float]) -> str:
    return f"median {statistics.median(times) * 1000:.0f} ms (min {min(times) * 1000:.0f})"


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
    first_env = dict(env, MODEL_REPOSITORY=f"{home}/empty-repo", CONTAINER_HOST=f"unix://{home}/no-podman.sock")
    rerun_env = dict(first_env, MODEL_REPOSITORY=f"{home}/repo")
    model_dir = Path(home) / "repo" / HOME_MODEL
    model_dir.mkdir(parents=True)
    (model_dir / "config.pbtxt").write_text(HOME_MODEL_CONFIG)
    gpus, listed = b"H100 80GB", HOME_MODEL.encode()
    # one warm-up each, so every run reads its .pyc files from the page cache
    first_paint_seconds(modelwiz, gpus, first_env)
    first_paint_seconds(modelwiz, listed, rerun_env)
    first_paint_seconds(bare, b"bare-textual-ready", env)
    bare_times, header_times, machine_times, home_times = [], [], [], []
    for _ in range(args.runs):
        bare_times.append(first_paint_seconds(bare, b"bare-textual-ready", env))
        header_times.append(first_paint_seconds(modelwiz, b"GPU workstation", first_env))
        machine_times.append(first_paint_seconds(modelwiz, gpus, first_env))
        home_times.append(first_paint_seconds(modelwiz, listed, rerun_env))
    base = statistics.median(bare_times)
    machine, home_screen = statistics.median(machine_times), statistics.median(home_times)
    print(f"runs: {args.runs} each, 80x24 pty, Python {sys.version.split()[0]}")
    print(f"bare Textual label:                {median_ms(bare_times)}")
    print(f"modelwiz first frame with header:  {median_ms(header_times)}")
    print(f"first run, machine screen's GPUs:  {median_ms(machine_times)}  ratio {machine / base:.2f}")
    print(f"re-run, home screen's models:      {median_ms(home_times)}  ratio {home_screen / base:.2f}")
    print(f"target: each ratio <= {TARGET}")
    return 0 if max(machine, home_screen) / base <= TARGET else 1


if __name__ == "__main__":
    raise SystemExit(main())
