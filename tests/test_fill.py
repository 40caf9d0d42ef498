"""GPUs put to work by default: `add` and the wizard give each used GPU's leftover memory to its
models as KV cache (`--reserve GIB` keeps room), a later add re-plans the others and says whose
budget shrinks, and a budget set by hand in model.json is kept, never shrunk."""

from __future__ import annotations

import json
from collections import defaultdict

import pytest

from tests.fixtures_repository import write_model_folder
from tests.planner_data import write_real_model_folder
from wizard.add_flow import AddRequest, describe_proposal, execute_add, prepare_add
from wizard.cli import main
from wizard.errors import ModelwizError
from wizard.gpus import describe
from wizard.repository import Repository
from wizard.units import GiB

FILLED = 0.85  # what "the GPUs are put to work" means: each used GPU's budgets add up to this at least


def per_gpu(plans) -> dict[str, float]:
    total: dict[str, float] = defaultdict(float)
    for plan in plans:
        if plan.fits:
            for device in plan.devices:
                total[device] += plan.gpu_memory_utilization
    return dict(total)


@pytest.mark.parametrize(
    ("gpus", "models"),
    [
        ("H100-80GB", ["Llama-3.1-8B"]),
        ("L40S", ["Llama-3.1-8B", "Mistral-7B-v0.1"]),
        ("2xH100-80GB", ["Llama-3.1-8B", "Mistral-7B-v0.1"]),
        ("2xA100-80GB", ["Llama-3.1-70B"]),
    ],
)
def test_a_default_add_plan_fills_every_used_gpu(tmp_path, gpus, models):
    folders = [write_real_model_folder(tmp_path / m.lower(), m) for m in models]
    repo = Repository.open(tmp_path / "repo", create=True)
    proposal = prepare_add(repo, [AddRequest(str(f)) for f in folders], inventory=describe(gpus))
    assert proposal.fits
    used = per_gpu(proposal.plans)
    assert used and all(total >= FILLED for total in used.values()), used


def test_reserve_keeps_memory_free_on_each_gpu(tmp_path):
    folder = write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")
    inventory = describe("H100-80GB")
    repo = Repository.open(tmp_path / "repo", create=True)
    proposal = prepare_add(repo, [AddRequest(str(folder))], inventory=inventory, reserve_bytes=30 * GiB)
    [plan] = proposal.plans
    gpu = inventory.devices[0]
    budget = plan.gpu_memory_utilization * gpu.cuda_total_bytes
    assert budget + 30 * GiB <= gpu.cuda_total_bytes
    assert plan.gpu_memory_utilization < FILLED
    [budgets] = proposal.plan.gpus
    assert budgets.reserved_bytes == 30 * GiB and budgets.free_bytes >= 30 * GiB


def test_cli_add_fills_by_default_and_reserve_keeps_room(tmp_path, capsys):
    model = write_real_model_folder(tmp_path / "src" / "Llama-8B", "Llama-3.1-8B")
    common = ["--gpus", "H100-80GB", "--yes", "--no-launch"]
    assert main(["add", str(model), "--repository", str(tmp_path / "a"), *common]) == 0
    filled = json.loads((tmp_path / "a/llama-8b/1/model.json").read_text())["gpu_memory_utilization"]
    assert filled >= FILLED
    # --fill stays accepted (it is the default)
    assert main(["add", str(model), "--repository", str(tmp_path / "b"), "--fill", *common]) == 0
    assert json.loads((tmp_path / "b/llama-8b/1/model.json").read_text())["gpu_memory_utilization"] == filled
    assert main(["add", str(model), "--repository", str(tmp_path / "c"), "--reserve", "40", *common]) == 0
    kept = json.loads((tmp_path / "c/llama-8b/1/model.json").read_text())["gpu_memory_utilization"]
    assert kept <= 0.5
    with pytest.raises(SystemExit) as exited:  # argparse refuses it, as `plan --reserve -1`
        main(["add", str(model), "--repository", str(tmp_path / "d"), "--reserve", "-1", *common])
    assert exited.value.code == 2
    assert "give 0 or more" in capsys.readouterr().err


def test_a_later_add_shrinks_the_others_and_says_so(tmp_path):
    big = write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")
    small = write_model_folder(tmp_path / "tiny")
    inventory = describe("L40S")
    repo = Repository.open(tmp_path / "repo", create=True)
    execute_add(repo, prepare_add(repo, [AddRequest(str(big))], inventory=inventory))
    before = Repository.open(tmp_path / "repo").manifest.get("l8").plan.gpu_memory_utilization
    assert before >= FILLED

    repo = Repository.open(tmp_path / "repo")
    proposal = prepare_add(repo, [AddRequest(str(small))], inventory=inventory)
    [change] = proposal.changed
    assert change.new.name == "l8" and change.new.gpu_memory_utilization < before
    text = "\n".join(describe_proposal(proposal))
    assert "CHANGE l8" in text and "l8's budget shrinks; a running server will reload it" in text
    assert per_gpu(proposal.plans)["0"] >= FILLED  # still put to work, now by both


def test_a_hand_set_budget_is_kept_while_the_others_are_replanned(tmp_path):
    """Three models on one GPU: l8's model.json was edited by hand; adding the third shrinks tiny
    (modelwiz's own budget) and leaves l8's exactly as the user set it."""
    big = write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")
    root = tmp_path / "repo"
    inventory = describe("L40S")
    repo = Repository.open(root, create=True)
    execute_add(repo, prepare_add(repo, [AddRequest(str(big))], inventory=inventory, reserve_bytes=20 * GiB))
    model_json = root / "l8" / "1" / "model.json"
    engine = json.loads(model_json.read_text())
    model_json.write_text(json.dumps({**engine, "gpu_memory_utilization": 0.6}))  # by hand

    repo = Repository.open(root)
    first = prepare_add(repo, [AddRequest(str(write_model_folder(tmp_path / "tiny")))], inventory=inventory)
    assert not first.changed  # the leftover went to tiny; l8 kept
    execute_add(repo, first)
    tiny_before = Repository.open(root).manifest.get("tiny").plan.gpu_memory_utilization
    assert 0.6 + tiny_before >= FILLED

    repo = Repository.open(root)
    second = prepare_add(repo, [AddRequest(str(write_model_folder(tmp_path / "tiny2")))], inventory=inventory)
    assert [c.new.name for c in second.changed] == ["tiny"]
    assert second.changed[0].new.gpu_memory_utilization < tiny_before
    assert [p.gpu_memory_utilization for p in second.kept if p.name == "l8"] == [0.6]
    execute_add(repo, second)
    assert json.loads(model_json.read_text())["gpu_memory_utilization"] == 0.6  # untouched


def test_a_hand_set_budget_that_leaves_no_room_is_refused_not_shrunk(tmp_path):
    big = write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")
    root = tmp_path / "repo"
    inventory = describe("L40S")
    repo = Repository.open(root, create=True)
    execute_add(repo, prepare_add(repo, [AddRequest(str(big))], inventory=inventory, reserve_bytes=20 * GiB))
    model_json = root / "l8" / "1" / "model.json"
    model_json.write_text(json.dumps({**json.loads(model_json.read_text()), "gpu_memory_utilization": 0.95}))
    repo = Repository.open(root)
    with pytest.raises(ModelwizError, match=r"smaller budget for l8, whose model\.json was edited by hand"):
        prepare_add(repo, [AddRequest(str(write_model_folder(tmp_path / "tiny")))], inventory=inventory)
