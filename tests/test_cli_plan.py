"""`modelwiz plan`: local model folders, --gpus, --json field names, exit codes."""

from __future__ import annotations

import json

import pytest

from tests.planner_data import PLAN_MODEL_FIELDS, config, model_dir, qwen_tensors, write_safetensors
from wizard.cli import main

FIELDS = PLAN_MODEL_FIELDS


@pytest.fixture
def qwen(tmp_path):
    """Qwen2.5-0.5B as downloaded: config.json and one safetensors file (header only)."""
    folder = tmp_path / "Qwen2.5-0.5B"
    folder.mkdir()
    (folder / "config.json").write_text(json.dumps(config("Qwen2.5-0.5B")))
    write_safetensors(folder / "model.safetensors", qwen_tensors(), with_data=False)
    return folder


def test_plan_json_for_a_local_folder(qwen, capsys):
    assert main(["plan", str(qwen), "--gpus", "L4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert [g["name"] for g in data["gpus"]] == ["NVIDIA L4"]
    (model,) = data["models"]
    assert set(model) >= FIELDS
    assert set(model["instance_group"]) == {"kind", "count", "gpus"}
    assert model["name"] == "qwen2.5-0.5b" and model["model"] == str(qwen)
    assert model["weights_bytes"] == 494_032_768 * 2
    assert model["fits"] is True and model["tensor_parallel_size"] == 1
    assert model["max_model_len"] == 32768 and model["instance_group"]["gpus"] == [0]


def test_plan_readable_output_shows_memory_map_and_why(tmp_path, capsys):
    folder = model_dir(tmp_path, "Llama-3.1-70B")
    assert main(["plan", str(folder), "--gpus", "2xH100-80GB"]) == 0
    out = capsys.readouterr().out
    assert "GPU 0  NVIDIA H100 80GB HBM3" in out and "GPU 1" in out
    # 65.7 GiB shards + 0.25 % + 32 MiB (real shards need less than the old +1 % + 64 MiB)
    assert "weights 65.9 GiB" in out and "KV cache" in out and "free" in out
    assert "tensor_parallel_size 2" in out and "KIND_MODEL" in out and "why:" in out
    assert "Everything fits." in out


def test_plan_exit_1_when_a_model_does_not_fit(tmp_path, capsys):
    folder = model_dir(tmp_path, "Llama-3.1-70B")
    assert main(["plan", str(folder), "--gpus", "H100-80GB", "--json"]) == 1
    (model,) = json.loads(capsys.readouterr().out)["models"]
    assert model["fits"] is False and "needs at least 2 such GPUs" in model["reason"]
    assert main(["plan", str(folder), "--gpus", "H100-80GB"]) == 1
    assert "DOES NOT FIT" in capsys.readouterr().out


def test_two_folders_with_the_same_name_get_unique_names(tmp_path, qwen, capsys):
    other = model_dir(tmp_path / "b", "Qwen2.5-0.5B")
    assert main(["plan", str(qwen), str(other), "--gpus", "H100-80GB", "--json"]) == 0
    names = [m["name"] for m in json.loads(capsys.readouterr().out)["models"]]
    assert names == ["qwen2.5-0.5b", "qwen2.5-0.5b-2"]


@pytest.mark.parametrize(
    "argv, message",
    [
        (["plan", "{missing}", "--gpus", "L4"], "neither a model directory nor a Hugging Face repo id"),
        (["plan", "{qwen}", "--gpus", "L4", "--max-model-len", "100000"], "above"),
        (["plan", "{qwen}", "--gpus", "L4", "--max-model-len", "0"], "not a positive number"),
        (["plan", "{qwen}", "--gpus", "L4", "--max-model-len", "lots"], "not a whole number"),
        (["plan", "{qwen}", "--gpus", "NoSuchGPU"], "unknown GPU"),
        (["plan", "{empty}", "--gpus", "L4"], "has no config.json"),
    ],
)
def test_bad_input_exits_2_with_one_line(argv, message, qwen, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    subs = {"{missing}": str(tmp_path / "missing"), "{qwen}": str(qwen), "{empty}": str(tmp_path / "empty")}
    try:
        code = main([subs.get(a, a) for a in argv])
    except SystemExit as exc:  # argparse rejects bad flag values itself
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and len(err.strip().splitlines()) == 1 and "Traceback" not in err


def test_plan_requires_a_model(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["plan", "--gpus", "L4"])
    assert exc.value.code == 2
