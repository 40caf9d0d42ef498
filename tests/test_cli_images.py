"""`--driver`, `plan --image`, and the `"image"` records of `plan --json` / `status --json`."""

from __future__ import annotations

import json

import pytest

from tests.planner_data import model_dir
from tests.test_repository import add
from wizard.cli import main
from wizard.gpus import DRIVER_ENV, describe

IMAGE_KEYS = {"ref", "vllm_version", "engine", "reason"}


@pytest.fixture
def qwen(tmp_path, monkeypatch):
    monkeypatch.setenv(DRIVER_ENV, "")  # `--driver` sets it for the process; restored after each test
    return model_dir(tmp_path, "Qwen2.5-0.5B")


def _plan(capsys, *argv):
    code = main(["plan", *argv, "--json"])
    return code, json.loads(capsys.readouterr().out)


def test_plan_json_carries_the_image_for_the_described_driver(qwen, capsys, monkeypatch):
    code, data = _plan(capsys, str(qwen), "--gpus", "2xH100-80GB", "--driver", "570.124.06")
    assert code == 0 and set(data["image"]) == IMAGE_KEYS
    assert data["image"]["ref"] == "nvcr.io/nvidia/tritonserver:25.07-vllm-python-py3"
    assert data["image"]["vllm_version"] == "0.9.0" and data["image"]["engine"] == "V0"
    assert "570.124.06" in data["image"]["reason"] and "minor-version" in data["image"]["reason"]
    assert {"gpus", "models", "fits", "budgets", "changes"} <= set(data)  # every field it had
    code, data = _plan(capsys, str(qwen), "--gpus", "H100-80GB", "--driver", "535.230.02")
    assert (
        data["image"]["ref"].endswith(":26.04-vllm-python-py3") and "forward compatibility" in data["image"]["reason"]
    )
    code, data = _plan(capsys, str(qwen), "--gpus", "RTX4090", "--driver", "535.230.02")
    assert data["image"]["ref"].endswith(":25.07-vllm-python-py3")
    monkeypatch.setenv(DRIVER_ENV, "")  # as in a new process
    code, data = _plan(capsys, str(qwen), "--gpus", "L4")  # no driver: the newest image
    assert data["image"]["engine"] == "V1" and "driver is unknown" in data["image"]["reason"]


def test_plan_with_a_driver_too_old_exits_1_with_the_reason(qwen, capsys):
    code, data = _plan(capsys, str(qwen), "--gpus", "L4", "--driver", "520.61.05")
    assert code == 1 and data["image"]["ref"] is None
    assert "older than every known Triton vLLM image" in data["image"]["reason"]
    assert main(["plan", str(qwen), "--gpus", "L4", "--driver", "520.61.05"]) == 1
    assert "Triton image: none" in capsys.readouterr().out


def test_plan_image_25_03_refuses_replicas(qwen, capsys):
    code, data = _plan(capsys, str(qwen), "--gpus", "2xL4", "--image", "25.03-vllm-python-py3")
    assert code == 1 and data["fits"] is True
    assert data["image"]["ref"].endswith(":25.03-vllm-python-py3") and "PR #85" in data["image"]["reason"]
    code, data = _plan(capsys, str(qwen), "--gpus", "2xL4", "--image", "25.04-vllm-python-py3")
    assert code == 0 and data["image"]["engine"] == "V0"
    assert main(["plan", str(qwen), "--gpus", "L4", "--image", "nope:1"]) == 2
    assert "unknown Triton vLLM image" in capsys.readouterr().err


def test_plan_refuses_v100_with_one_line_naming_it(qwen, capsys):
    code, data = _plan(capsys, str(qwen), "--gpus", "V100-32GB", "--driver", "580.95.05")
    (model,) = data["models"]
    assert code == 1 and model["fits"] is False
    assert "Tesla V100-SXM2-32GB" in model["reason"] and "compute capability 7.0" in model["reason"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["--driver", "five-seventy"], "not an NVIDIA driver version"),
        (["--driver", "570.124.06"], "--driver describes another machine"),
    ],
)
def test_bad_driver_flag_exits_2(qwen, capsys, argv, message):
    assert main(["plan", str(qwen), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1


def test_status_json_keeps_image_and_adds_what_it_runs(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(DRIVER_ENV, "")
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("H100-80GB"), image_ref="25.07-vllm-python-py3")
    assert main(["status", "--repository", str(root), "--json", "--gpus", "H100-80GB", "--driver", "575.57.08"]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["image"] == "nvcr.io/nvidia/tritonserver:25.07-vllm-python-py3"
    info = status["image_info"]
    assert set(info) == IMAGE_KEYS and info["engine"] == "V0" and info["vllm_version"] == "0.9.0"
    assert "575.57.08" not in info["reason"] or "meets" in info["reason"]
    assert main(["status", "--repository", str(root), "--gpus", "H100-80GB", "--driver", "520.61.05"]) == 0
    assert "driver 520.61.05 does not run it" in capsys.readouterr().out


def test_gpus_shows_the_image_for_the_described_driver(monkeypatch, capsys):
    monkeypatch.setenv(DRIVER_ENV, "")
    assert main(["gpus", "--gpus", "H100-80GB", "--driver", "580.95.05", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["gpus"][0]["name"] == "NVIDIA H100 80GB HBM3" and data["driver_version"] == "580.95.05"
    assert data["image"]["ref"].endswith(":26.07-vllm-python-py3") and data["image"]["engine"] == "V1"
    assert main(["gpus", "--gpus", "RTX4090", "--driver", "520.61.05"]) == 0
    assert "Triton image: none (NVIDIA driver 520.61.05 is older than" in capsys.readouterr().out
