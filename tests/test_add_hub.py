"""`modelwiz add` with a Hub model, end to end through the real planner, download and repository."""

from __future__ import annotations

import json

from tritonclient.grpc import model_config_pb2

from wizard import cli
from wizard.download import is_complete
from wizard.manifest import load_manifest
from wizard.model_config import parse_config_pbtxt


def test_add_a_hub_model_writes_a_servable_repository(fake_hub, tmp_path, capsys):
    repo = tmp_path / "repo"
    code = cli.main(["add", "org/tiny", "--repository", str(repo), "--gpus", "L4", "--yes", "--no-launch"])
    captured = capsys.readouterr()
    assert code == 0, captured.err

    manifest = load_manifest(repo)
    entry = manifest.get("tiny")
    assert entry is not None and entry.complete
    assert entry.source == "org/tiny"
    assert entry.revision == fake_hub.repos["org/tiny"].sha

    model_dir = repo / "tiny"
    config = parse_config_pbtxt((model_dir / "config.pbtxt").read_text())
    assert isinstance(config, model_config_pb2.ModelConfig)
    assert config.backend == "vllm" and config.max_batch_size == 0
    assert config.model_transaction_policy.decoupled
    (group,) = config.instance_group
    assert group.kind == model_config_pb2.ModelInstanceGroup.KIND_GPU and list(group.gpus) == [0]

    engine = json.loads((model_dir / "1" / "model.json").read_text())
    assert engine["model"] == f"{manifest.mount_point}/tiny/{entry.weights}"
    assert 0 < engine["gpu_memory_utilization"] <= 0.95
    assert "disable_log_requests" not in engine
    # The batch limits the planner sized activations for reach vLLM.
    assert engine["max_num_batched_tokens"] == entry.plan.extra["max_num_batched_tokens"]
    assert engine["max_num_seqs"] == entry.plan.extra["max_num_seqs"]

    weights = model_dir / entry.weights
    assert is_complete(weights)
    assert (weights / "config.json").is_file()
    assert not list(weights.glob("*.bin")) and not (weights / "original").exists()


def test_remove_keeping_the_weights_then_add_again_uses_them(fake_hub, tmp_path, capsys):
    """`remove --keep-weights` leaves the weights; the repository lists them as kept (not a broken
    model), and adding the same model again takes that folder and fetches nothing."""
    from wizard.repository import KEPT, Repository

    repo = tmp_path / "repo"
    args = ["--repository", str(repo), "--gpus", "L4"]
    assert cli.main(["add", "org/tiny", *args, "--yes", "--no-launch"]) == 0
    assert cli.main(["remove", "tiny", "--repository", str(repo), "--keep-weights"]) == 0
    (kept,) = Repository.open(repo).models()
    assert kept.state == KEPT and "modelwiz add org/tiny" in kept.problems[0]
    assert Repository.open(repo).kept_weights() == {"tiny": "org/tiny"}
    capsys.readouterr()
    gets = len(fake_hub.requests("GET", "/resolve/")) + len(fake_hub.requests("GET", "/_cdn/"))
    assert cli.main(["add", "org/tiny", *args, "--yes", "--no-launch"]) == 0, capsys.readouterr().err
    assert len(fake_hub.requests("GET", "/resolve/")) + len(fake_hub.requests("GET", "/_cdn/")) == gets
    entry = load_manifest(repo).get("tiny")
    assert entry is not None and entry.complete and not (repo / "tiny-2").exists()
    (model,) = Repository.open(repo).models()
    assert model.ready


def test_a_name_taken_by_another_models_kept_weights_is_refused(fake_hub, tmp_path, capsys):
    repo = tmp_path / "repo"
    args = ["--repository", str(repo), "--gpus", "L4", "--yes", "--no-launch"]
    assert cli.main(["add", "org/tiny", *args]) == 0
    assert cli.main(["remove", "tiny", "--repository", str(repo), "--keep-weights"]) == 0
    capsys.readouterr()
    assert cli.main(["add", "org/tiny-gated", "--name", "tiny", *args]) == 2
    assert "already has a model named 'tiny'" in capsys.readouterr().err
