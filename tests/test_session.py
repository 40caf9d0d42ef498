"""The add session: one `modelwiz add` reads the Hub and NVML once, names models by one rule from
the CLI and from the wizard's CoreService alike, and downloads exactly the commit it planned.

Everything real but the boundaries: the fake Hub (driven by the real huggingface_hub), the fake
NVML (under the real pynvml), the real planner, download and repository."""

from __future__ import annotations

import re
import threading

import pytest

from tests.fixtures_hub import tiny_model_files
from tests.fixtures_nvml import h100
from wizard.add_flow import AddRequest
from wizard.cli import main
from wizard.core_service import CoreService
from wizard.errors import Cancelled, UsageError
from wizard.gpus import describe
from wizard.manifest import load_manifest
from wizard.service import ModelChoice
from wizard.session import AddSession

MODEL_INFO = re.compile(r"^/api/models/org/tiny(/revision/[^/?]+)?(\?|$)")


def model_info_calls(hub) -> int:
    """GETs of org/tiny's model_info, at main or at any revision."""
    return sum(1 for r in hub.requests("GET") if MODEL_INFO.match(r.path))


def test_one_add_reads_the_hub_and_nvml_once_per_model(fake_hub, fake_nvml, tmp_path, capsys):
    nvml = fake_nvml([h100(0)])
    repo = tmp_path / "repo"
    code = main(["add", "org/tiny", "--repository", str(repo), "--yes", "--no-launch"])
    assert code == 0, capsys.readouterr().err
    assert model_info_calls(fake_hub) == 1
    assert nvml.calls["nvmlInit"] == 1 and nvml.calls["nvmlDeviceGetCount"] == 1
    entry = load_manifest(repo).get("tiny")
    assert entry.complete and entry.revision == fake_hub.repos["org/tiny"].sha


# -- one naming rule, from the CLI and from the wizard ---------------------------------------------


def _unfinished_tiny(root) -> None:
    """org/tiny recorded as `tiny`, its download stopped before the first byte."""
    session = AddSession(root, describe("L4"))
    with session.locked():
        proposal = session.propose([AddRequest("org/tiny")])
        cancel = threading.Event()
        cancel.set()
        with pytest.raises(Cancelled):
            session.write(proposal, cancel=cancel)
    assert not load_manifest(root).get("tiny").complete


def test_an_unfinished_add_is_resumed_from_the_cli(fake_hub, tmp_path, capsys):
    root = tmp_path / "repo"
    _unfinished_tiny(root)
    code = main(["add", "org/tiny", "--repository", str(root), "--gpus", "L4", "--yes", "--no-launch"])
    out = capsys.readouterr().out
    assert code == 0 and "finish tiny <- org/tiny" in out and "tiny-2" not in out
    assert load_manifest(root).get("tiny").complete and load_manifest(root).names == ("tiny",)


def test_an_unfinished_add_is_resumed_from_the_wizard(fake_hub, tmp_path):
    root = tmp_path / "repo"
    _unfinished_tiny(root)
    service = CoreService(spec="L4", repository=root)
    choice = ModelChoice("org/tiny")  # the user typed no name
    view = service.plan(describe("L4"), [choice])
    assert view.names == {"org/tiny": "tiny"} and view.name_of(choice) == "tiny"
    assert [(n.plan.name, n.resume) for n in view.raw.new] == [("tiny", True)]
    service.download(view, choice, on_progress=lambda e: None, cancel=threading.Event())
    service.write_repository(view, [choice])
    assert load_manifest(root).get("tiny").complete and load_manifest(root).names == ("tiny",)


def test_a_second_copy_needs_a_name_from_the_cli_and_the_wizard(fake_hub, tmp_path, capsys):
    root = tmp_path / "repo"
    args = ["--repository", str(root), "--gpus", "L4", "--yes", "--no-launch"]
    assert main(["add", "org/tiny", *args]) == 0
    capsys.readouterr()
    assert main(["add", "org/tiny", *args]) == 2
    cli_error = capsys.readouterr().err
    assert "already in the repository as 'tiny'" in cli_error

    service = CoreService(spec="L4", repository=root)
    with pytest.raises(UsageError) as refused:
        service.plan(describe("L4"), [ModelChoice("org/tiny")])
    assert refused.value.message in cli_error
    # A name typed by the user is a second copy, in both.
    view = service.plan(describe("L4"), [ModelChoice("org/tiny", "tiny-copy")])
    assert view.names == {"org/tiny": "tiny-copy"}
    assert main(["add", "org/tiny", "--name", "tiny-copy", *args]) == 0
    assert load_manifest(root).names == ("tiny", "tiny-copy")


# -- the commit planned is the commit downloaded -----------------------------------------------------


def _new_main(fake_hub) -> str:
    files = tiny_model_files((300_000, 200_000))  # other random weights: another commit
    return fake_hub.push("org/tiny", files)


def _weights(root, name):
    entry = load_manifest(root).get(name)
    folder = root / name / entry.weights
    return entry, {p.name: p.read_bytes() for p in folder.glob("*.safetensors")}


def test_the_session_downloads_the_commit_it_planned(fake_hub, tmp_path):
    planned_files = fake_hub.repos["org/tiny"].files
    planned = fake_hub.repos["org/tiny"].sha
    root = tmp_path / "repo"
    session = AddSession(root, describe("L4"))
    with session.locked():
        proposal = session.propose([AddRequest("org/tiny")])
        assert [n.revision for n in proposal.new] == [planned]
        assert _new_main(fake_hub) != planned  # main moves between plan and download
        session.write(proposal)
    entry, weights = _weights(root, "tiny")
    assert entry.revision == planned
    assert weights == {k: v for k, v in planned_files.items() if k.endswith(".safetensors")}


def test_the_wizard_downloads_the_commit_it_showed(fake_hub, tmp_path):
    root = tmp_path / "repo"
    service = CoreService(spec="L4", repository=root)
    shown = service.model_details("org/tiny").revision
    planned_files = fake_hub.repos["org/tiny"].files
    assert _new_main(fake_hub) != shown  # main moves while the user looks at the plan
    choice = ModelChoice("org/tiny", revision=shown)
    view = service.plan(describe("L4"), [choice])
    assert [n.revision for n in view.raw.new] == [shown]
    service.download(view, choice, on_progress=lambda e: None, cancel=threading.Event())
    service.write_repository(view, [choice])
    entry, weights = _weights(root, "tiny")
    assert entry.complete and entry.revision == shown
    assert weights == {k: v for k, v in planned_files.items() if k.endswith(".safetensors")}
    # The details shown, the plan and the download share one model_info.
    assert model_info_calls(fake_hub) == 1


def test_a_resumed_add_keeps_the_commit_first_planned(fake_hub, tmp_path, capsys):
    root = tmp_path / "repo"
    planned = fake_hub.repos["org/tiny"].sha
    _unfinished_tiny(root)
    assert load_manifest(root).get("tiny").revision == planned  # recorded before any byte moved
    _new_main(fake_hub)
    assert main(["add", "org/tiny", "--repository", str(root), "--gpus", "L4", "--yes", "--no-launch"]) == 0
    assert load_manifest(root).get("tiny").revision == planned
