"""Shared by the export tests: a real model repository made by the add flow (planner and Hub
faked at their boundaries, as the repository tests do), and the container `modelwiz up` creates."""

from __future__ import annotations

from pathlib import Path

from tests.fixtures_repository import FakeDownloader, FakeReader, fake_plan_models
from wizard.add_flow import AddRequest, execute_add, prepare_add
from wizard.gpus import describe
from wizard.repository import Repository

SHA = "0123456789abcdef0123456789abcdef01234567"


def make_repository(root: Path, *sources: str, gpus: str = "2xH100-80GB") -> Repository:
    """Add `sources` one `modelwiz add` at a time (joint plans, real files, real manifest)."""
    for source in sources:
        repo = Repository.open(root, create=True)
        proposal = prepare_add(
            repo,
            [AddRequest(source)],
            inventory=describe(gpus),
            image_ref="26.07-vllm-python-py3",
            planner=fake_plan_models,
            reader=FakeReader(),
        )
        execute_add(repo, proposal, downloader=FakeDownloader(sha=SHA))
    return Repository.open(root)


def up_kwargs(repo: Repository, **overrides):
    """`create_kwargs(LaunchSpec)` exactly as `modelwiz up` builds it for `repo`."""
    from wizard.export_facts import LaunchChoices, launch_kwargs

    models = tuple(m.name for m in repo.models() if m.ready)
    return launch_kwargs(repo, models, LaunchChoices(**overrides))
