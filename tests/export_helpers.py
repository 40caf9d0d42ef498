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


def up_facts(repo: Repository, *, rootless: bool = False, selinux: bool = False, **options):
    """The export's facts for `repo`, and `create_kwargs(LaunchSpec)`: what `modelwiz up` hands
    podman-py for the same spec (the options as flags, the host as given)."""
    from wizard.container import create_kwargs
    from wizard.export_facts import serving_facts
    from wizard.launch_inputs import HostFacts
    from wizard.serve_options import ServeOptions

    facts = serving_facts(repo, ServeOptions(**options), HostFacts(rootless=rootless, selinux=selinux))
    return facts, create_kwargs(facts.spec)


def export_facts(repo: Repository, **options):
    """The export's facts for `repo` on a rootful host without SELinux."""
    return up_facts(repo, **options)[0]
