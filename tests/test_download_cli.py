"""`modelwiz download` and `modelwiz login` as a user runs them: real subprocesses, the fake Hub."""

from __future__ import annotations

import hashlib
import io
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.fakehub import FakeRepo, safetensors_bytes
from tests.fixtures_hub import GOOD_TOKEN, llama_config, partial_of
from wizard import download as dl
from wizard.progress import ProgressEvent
from wizard.progress_text import describe, progress_printer


def modelwiz(args, env, **kw):
    return subprocess.run(
        [sys.executable, "-m", "wizard", *args], env=env, capture_output=True, text=True, timeout=60, **kw
    )


def test_download_command_plain_lines_and_summary(hub_env, tmp_path, fake_hub):
    dest = tmp_path / "out"
    proc = modelwiz(["download", "org/tiny", "--to", str(dest)], hub_env)
    assert proc.returncode == 0, proc.stderr
    assert "org/tiny @ " in proc.stdout and "8 files" in proc.stdout
    lines = proc.stderr.strip().splitlines()
    assert lines and "\r" not in proc.stderr and "8/8 files" in lines[-1]
    assert dl.is_complete(dest)
    again = modelwiz(["download", "org/tiny", "--to", str(dest)], hub_env)
    assert again.returncode == 0 and "already complete" in again.stdout


def test_download_command_errors_are_one_line(hub_env, tmp_path, fake_hub):
    proc = modelwiz(["download", "org/missing", "--to", str(tmp_path / "x")], hub_env)
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    proc = modelwiz(["download", "org/tiny-gated", "--to", str(tmp_path / "y")], hub_env)
    assert proc.returncode == 1 and "modelwiz login" in proc.stderr and "/org/tiny-gated" in proc.stderr
    proc = modelwiz(["download", "org/tiny"], hub_env)
    assert proc.returncode == 2 and "--to" in proc.stderr


def test_login_from_stdin_then_download_gated(hub_env, tmp_path, fake_hub):
    bad = modelwiz(["login"], hub_env, input="hf_nope_000000000000000000000\n")
    assert bad.returncode == 1 and "invalid" in bad.stderr and "hf_nope" not in bad.stderr + bad.stdout
    proc = modelwiz(["login"], hub_env, input=GOOD_TOKEN + "\n")
    assert proc.returncode == 0, proc.stderr
    assert "alice" in proc.stdout and GOOD_TOKEN not in proc.stdout + proc.stderr
    assert Path(hub_env["HF_TOKEN_PATH"]).read_text().strip() == GOOD_TOKEN
    status = modelwiz(["login", "--status"], hub_env)
    assert status.returncode == 0 and "alice" in status.stdout
    dest = tmp_path / "g"
    got = modelwiz(["download", "org/tiny-gated", "--to", str(dest)], hub_env)
    assert got.returncode == 0, got.stderr
    # The token is in no file modelwiz wrote, nor in any URL.
    for path in dest.rglob("*"):
        if path.is_file():
            assert GOOD_TOKEN.encode() not in path.read_bytes(), path
    assert all(GOOD_TOKEN not in r.path for r in fake_hub.requests())


def test_kill_9_mid_download_then_a_rerun_ends_identical(hub_env, tmp_path, fake_hub):
    big = os.urandom(3 * 1024 * 1024)
    files = {
        "config.json": llama_config(),
        "tokenizer.json": b"{}",
        "model-00001-of-00002.safetensors": safetensors_bytes({"a": ("U8", [len(big)])}, fill=big),
        "model-00002-of-00002.safetensors": safetensors_bytes({"b": ("U8", [200_000])}, fill=os.urandom(4096)),
    }
    repo = fake_hub.add(FakeRepo("org/killme", files))
    shard = "model-00001-of-00002.safetensors"
    fake_hub.throttle[shard] = 0.05  # ~1.3 MiB/s: time to kill it
    dest = tmp_path / "k"
    proc = subprocess.Popen(
        [sys.executable, "-m", "wizard", "download", "org/killme", "--to", str(dest)],
        env=hub_env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        part = partial_of(dest, repo, shard)
        while time.monotonic() < deadline:
            if (dest / "config.json").exists() and part.exists() and part.stat().st_size > 256 * 1024:
                break
            time.sleep(0.02)
        else:
            raise AssertionError("the download never got going")
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == -signal.SIGKILL
    assert not dl.is_complete(dest)
    assert not (dest / shard).exists()  # never a half file under its name
    # What arrived before the kill is kept, and the rerun asks only for the rest of that file.
    have = part.stat().st_size
    assert 256 * 1024 < have < len(files[shard]) and part.read_bytes() == files[shard][:have]
    fake_hub.throttle.clear()
    before = len(fake_hub.requests("GET", shard))
    rerun = modelwiz(["download", "org/killme", "--to", str(dest)], hub_env)
    assert rerun.returncode == 0, rerun.stderr
    assert [r.headers.get("range") for r in fake_hub.requests("GET", shard)[before:]] == [f"bytes={have}-"]
    assert dl.is_complete(dest) and not list(dest.rglob("*.incomplete")) and not part.exists()
    for name, data in files.items():
        assert hashlib.sha256((dest / name).read_bytes()).hexdigest() == hashlib.sha256(data).hexdigest()
    assert repo.sha in dl.read_marker(dest)["sha"]


def test_terminal_bar_redraws_one_line_and_plain_mode_prints_lines():
    events = [
        ProgressEvent(
            "download x",
            d,
            100,
            current="w.safetensors",
            files_done=d // 50,
            files_total=2,
            rate_bytes_per_s=10.0,
            eta_s=(100 - d) / 10,
        )
        for d in (0, 50, 100)
    ]
    events.append(ProgressEvent("download x", 100, 100, files_done=2, files_total=2, finished=True))
    tty = io.StringIO()
    printer = progress_printer(tty, tty=True)
    for e in events:
        printer(e)
    printer.close()
    assert tty.getvalue().count("\r") == 4 and tty.getvalue().endswith("\n") and tty.getvalue().count("\n") == 1
    plain = io.StringIO()
    printer = progress_printer(plain, tty=False, interval_s=3600)
    for e in events:
        printer(e)
    lines = plain.getvalue().splitlines()
    assert "\r" not in plain.getvalue() and lines[-1].startswith("100 B / 100 B (100%)  2/2 files")
    assert len(lines) == 4  # the first, one per file finished, the finish
    printer(ProgressEvent("download x", 60, 100, files_done=2, files_total=2))
    assert len(plain.getvalue().splitlines()) == 4  # same file count, within the interval: no line
    assert "ETA 5s" in describe(events[1]) and "w.safetensors" in describe(events[1])


@pytest.mark.parametrize(
    ("fault", "said"), [("500", "server error (HTTP 500)"), ("drop", "kept dropping")], ids=["500", "drop"]
)
def test_hub_retry_chatter_never_reaches_the_terminal(hub_env, tmp_path, fake_hub, fault, said):
    """huggingface_hub resets its logger level when imported; a persistent 500 used to print ~90
    retry lines (a dropping connection ~96) and end with 'check the network'. Now: one line that
    says what happened."""
    if fault == "500":
        fake_hub.fail_status, fake_hub.fail_times = 500, 10_000
    else:
        big = "model-00001-of-00002.safetensors"
        fake_hub.cut_after[big], fake_hub.cut_times[big] = 0, 10_000
    proc = modelwiz(["download", "org/tiny", "--to", str(tmp_path / "d")], hub_env)
    assert proc.returncode == 1
    lines = [line for line in proc.stderr.splitlines() if "/8 files" not in line]  # progress lines aside
    assert len(lines) == 1, proc.stderr
    assert said in lines[0] and "check the network" not in lines[0].split(";")[0]


def test_credentials_in_hf_endpoint_never_reach_stderr(hub_env, tmp_path, fake_hub):
    env = dict(hub_env, HF_ENDPOINT=fake_hub.endpoint.replace("http://", "http://u:PaSsWoRd@"))
    proc = modelwiz(["download", "org/tiny-gated", "--to", str(tmp_path / "g")], env)
    assert proc.returncode == 1 and "***@127.0.0.1" in proc.stderr and "PaSsWoRd" not in proc.stderr
    env["HF_ENDPOINT"] = "http://u:PaSsWoRd@127.0.0.1:1"
    proc = modelwiz(["download", "org/tiny", "--to", str(tmp_path / "h")], env)
    assert proc.returncode == 1 and "PaSsWoRd" not in proc.stderr + proc.stdout, proc.stderr
