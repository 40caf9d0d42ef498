"""The stand-in Triton refuses what each real release's backend refuses, so a repository that a
real deployment of that image would fail to serve fails here too (real podman).

The stand-in reads its release from NVIDIA_TRITON_SERVER_VERSION, the variable the NGC tritonserver
images set (server build.py: `ENV NVIDIA_TRITON_SERVER_VERSION ${TRITON_CONTAINER_VERSION}`).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import replace

import pytest

from tests.fixtures_podman import _busybox, _rootfs_tar, free_port
from tests.test_repository import add
from wizard.cli import main
from wizard.gpus import describe
from wizard.images import find_image
from wizard.repository import Repository

pytestmark = pytest.mark.podman


@pytest.fixture(scope="module")
def standin_release(podman_service, standin_image, tmp_path_factory):
    """`release` -> a stand-in image that says it is that NGC release. Built FROM the stand-in of
    this checkout by content (the shared `localhost/tritonserver:test` tag may be retagged by a
    concurrent session with other scripts)."""
    digest = hashlib.sha256(_rootfs_tar(_busybox())).hexdigest()[:16]
    base = f"localhost/modelwiz-standin:{digest}"
    built: dict[str, str] = {}

    def image(release: str) -> str:
        if release not in built:
            tag = f"localhost/modelwiz-standin-{digest}:{release}-vllm-python-py3"
            context = tmp_path_factory.mktemp(f"standin-{release}")
            (context / "Containerfile").write_text(f"FROM {base}\nENV NVIDIA_TRITON_SERVER_VERSION={release}\n")
            podman_service.podman("build", "--pull=never", "-q", "-t", tag, str(context))
            built[release] = tag
        return built[release]

    return image


@pytest.fixture
def launch(podman_service, cdi_gpus, monkeypatch, capsys):

    # The sandbox's hard limits are lower than podman's built-in ones (see tests/fixtures_podman.py).
    monkeypatch.setenv("CONTAINER_HOST", podman_service.url)
    names: list[str] = []

    def up(repository, image):
        name = podman_service.container_name()
        names.append(name)
        ports = ["--http-port", str(free_port()), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
        capsys.readouterr()
        code = main(["up", "--repository", str(repository), "--image", image, "--name", name, *ports])
        return code, capsys.readouterr().err

    yield up
    for name in names:
        main(["down", "--name", name])


def _long_context(root, name, length=32768, batch=2048):
    """The planner's batch limits on a model whose context is longer than its batch."""
    repo = Repository.open(root)
    entry = repo.manifest.get(name)
    plan = replace(entry.plan, max_model_len=length, extra={"max_num_batched_tokens": batch, "max_num_seqs": 256})
    repo.record(replace(entry, plan=plan))


def test_v0_era_release_refuses_a_model_json_written_for_v1(tmp_path, standin_release, launch):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("L4"), image_ref="26.07-vllm-python-py3")
    _long_context(root, "first-7b")
    repo = Repository.open(root)
    repo.write_models([repo.manifest.get("first-7b")], vllm_version="0.24.0")  # what V1 accepts
    data = json.loads((root / "first-7b/1/model.json").read_text())
    assert data["max_num_batched_tokens"] < data["max_model_len"] and "enable_chunked_prefill" not in data

    code, err = launch(root, standin_release("25.07"))
    assert code == 1, err
    assert "max_num_batched_tokens (2048) is smaller than max_model_len (32768)" in err

    # The same files on a V1-era release load.
    code, err = launch(root, standin_release("25.10"))
    assert code == 0, err


def test_model_json_modelwiz_writes_for_a_v0_image_loads_there(tmp_path, standin_release, launch):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("L4"), image_ref="25.07-vllm-python-py3")
    _long_context(root, "first-7b")
    repo = Repository.open(root)
    repo.write_models([repo.manifest.get("first-7b")], vllm_version=find_image(repo.manifest.image).vllm_release)
    assert json.loads((root / "first-7b/1/model.json").read_text())["enable_chunked_prefill"] is True
    code, err = launch(root, standin_release("25.07"))
    assert code == 0, err


def test_25_03_puts_replicas_on_the_first_gpu(tmp_path, standin_release, launch):
    root = tmp_path / "repo"
    add(root, "org/first-7b", inventory=describe("2xL4"), image_ref="26.07-vllm-python-py3")
    repo = Repository.open(root)
    entry = repo.manifest.get("first-7b")
    # Replicas on both GPUs (what the planner gives a model that fits one GPU), 0.6 of each.
    plan = replace(
        entry.plan,
        gpu_memory_utilization=0.6,
        devices=("0", "1"),
        instance_group=replace(entry.plan.instance_group, gpus=(0, 1)),
    )
    repo.record(replace(entry, plan=plan))
    repo = Repository.open(root)
    repo.write_models([repo.manifest.get("first-7b")], vllm_version="0.24.0")
    assert "gpus: [ 0, 1 ]" in (root / "first-7b/config.pbtxt").read_text()

    code, err = launch(root, standin_release("25.03"))
    assert code == 1 and "No available memory for the cache blocks" in err
    code, err = launch(root, standin_release("25.04"))
    assert code == 0, err
