"""The `modelwiz` command line: subcommands, global options, exit codes, one-line errors."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from wizard import __version__, cli

ROOT = Path(__file__).resolve().parent.parent


def run_cli(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    full_env = {**os.environ, **(env or {})}
    full_env["PYTHONPATH"] = str(ROOT)
    return subprocess.run(
        [sys.executable, "-m", "wizard", *args],
        capture_output=True,
        text=True,
        env=full_env,
        cwd=ROOT,
        timeout=60,
        stdin=subprocess.DEVNULL,
    )


def test_version():
    result = run_cli("--version")
    assert result.returncode == 0
    assert result.stdout.strip() == f"modelwiz {__version__}"


def test_gpus_json_for_described_h100s():
    result = run_cli("gpus", "--gpus", "2xH100-80GB", "--json")
    assert result.returncode == 0, result.stderr
    data = json.loads(result.stdout)
    assert data["source"] == "described"
    assert len(data["gpus"]) == 2
    for i, gpu in enumerate(data["gpus"]):
        assert {
            "index",
            "name",
            "uuid",
            "memory_total_bytes",
            "memory_free_bytes",
            "memory_used_bytes",
            "compute_capability",
            "mig",
        } <= gpu.keys()
        assert gpu["index"] == i
        assert gpu["compute_capability"] == "9.0"
        assert 80 * 10**9 < gpu["memory_total_bytes"] < 90 * 10**9
        assert gpu["memory_free_bytes"] > 0.99 * gpu["memory_total_bytes"]  # idle
        assert gpu["mig"] == {"enabled": False, "devices": []}


def test_global_option_before_the_command_and_from_the_environment():
    before = run_cli("--gpus", "L4", "gpus", "--json")
    env = run_cli("gpus", "--json", env={"MODELWIZ_GPUS": "L4"})
    assert json.loads(before.stdout)["gpus"][0]["name"] == "NVIDIA L4"
    assert json.loads(env.stdout)["gpus"][0]["name"] == "NVIDIA L4"


def test_table_output():
    result = run_cli("gpus", "--gpus", "A100-40GB,L4")
    assert result.returncode == 0
    assert "NVIDIA A100-SXM4-40GB" in result.stdout and "NVIDIA L4" in result.stdout
    assert "40.0 GiB" in result.stdout


def test_no_driver_exits_1_with_one_line():
    result = run_cli("gpus")  # this machine has no NVIDIA driver
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("modelwiz: error: no NVIDIA driver found")
    assert "--gpus" in lines[0]
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize(
    "args",
    [("gpus", "--gpus", "B200"), ("--gpus", "", "gpus"), ("nonsense",), ("gpus", "--bogus-flag")],
)
def test_bad_input_exits_2_with_one_line(args):
    result = run_cli(*args)
    assert result.returncode == 2, result
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr


@pytest.mark.parametrize("command", [None, *cli.COMMANDS])
def test_help_everywhere(command, capsys):
    with pytest.raises(SystemExit) as info:
        cli.main([command, "--help"] if command else ["--help"])
    assert info.value.code == 0
    assert "usage: modelwiz" in capsys.readouterr().out


def test_no_terminal_means_exit_2_pointing_to_add():
    result = run_cli()
    assert result.returncode == 2
    assert "modelwiz add MODEL --yes" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_unexpected_errors_are_one_line_unless_debug(monkeypatch, capsys):
    import wizard.commands.gpus as gpus_cmd

    def boom(args):
        raise RuntimeError("kaput")

    monkeypatch.setattr(gpus_cmd, "run", boom)
    assert cli.main(["gpus"]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "kaput" in err and "--debug" in err
    with pytest.raises(RuntimeError):
        cli.main(["--debug", "gpus"])
