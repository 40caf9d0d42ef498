"""The wizard's CoreService over the real core: Hub (fake server), planner, download, repository,
and launch (real podman, stand-in Triton). What the TUI and the plain prompts call, for real."""

from __future__ import annotations

import json
import threading

import pytest

from tests.fixtures_hub import GOOD_TOKEN
from wizard.core_service import CoreService
from wizard.download import is_complete
from wizard.errors import Cancelled
from wizard.gpus import describe
from wizard.manifest import load_manifest
from wizard.model_config import parse_config_pbtxt
from wizard.service import ModelChoice


@pytest.fixture
def backend(tmp_path, fake_hub):
    return CoreService(spec="L4", repository=tmp_path / "repo")


def test_search_and_details_come_from_the_hub(backend, fake_hub):
    hits = backend.search_models("tiny", describe("L4"))
    assert [h.repo_id for h in hits][:2] == ["org/tiny-chat", "org/tiny"]  # most downloaded first
    assert all(h.fit == "fits" for h in hits if h.weights_bytes)
    details = backend.model_details("org/tiny")
    assert details.pickable and details.revision == fake_hub.repos["org/tiny"].sha
    gated = backend.model_details("org/tiny-gated")
    assert gated.access == "needs-login" and not gated.pickable
    assert "modelwiz login" in gated.access_note or "log in" in gated.access_note.lower()


def test_gated_with_a_token_but_no_access_says_where_to_ask(backend, fake_hub, monkeypatch):
    from tests.fixtures_hub import OTHER_TOKEN

    monkeypatch.setenv("HF_TOKEN", OTHER_TOKEN)
    details = backend.model_details("org/tiny-gated")
    assert details.access == "needs-request"
    assert "org/tiny-gated" in details.access_note
    monkeypatch.setenv("HF_TOKEN", GOOD_TOKEN)
    assert backend.model_details("org/tiny-gated").pickable


def test_plan_download_write_into_a_real_repository(backend, fake_hub, tmp_path):
    inventory = describe("L4")
    choice = ModelChoice("org/tiny", "tiny", max_model_len=1024)
    view = backend.plan(inventory, [choice])
    assert view.fits
    (plan,) = view.models
    assert plan.name == "tiny" and plan.max_model_len == 1024
    (device,) = view.devices
    parts = dict(device.parts())
    assert sum(parts.values()) == device.total and parts["weights"] > 0
    # Re-planning as the user edits reads the Hub once, not once per edit.
    before = len(fake_hub.requests("GET", "/api/models/org/tiny"))
    assert (
        backend.plan(inventory, [ModelChoice("org/tiny", "tiny", max_model_len=2048)]).models[0].max_model_len == 2048
    )
    view = backend.plan(inventory, [choice])  # and back: the last plan is the one that is written
    assert len(fake_hub.requests("GET", "/api/models/org/tiny")) == before

    disk = backend.disk_check(view)
    assert disk.ok and disk.needed_bytes > 0
    events = []
    backend.download(view, choice, on_progress=events.append, cancel=threading.Event())
    assert events[-1].finished
    backend.write_repository(view, [choice])

    repo = tmp_path / "repo"
    entry = load_manifest(repo).get("tiny")
    assert entry.complete and entry.revision == fake_hub.repos["org/tiny"].sha
    assert is_complete(repo / "tiny" / entry.weights)
    parse_config_pbtxt((repo / "tiny" / "config.pbtxt").read_text())
    assert json.loads((repo / "tiny" / "1" / "model.json").read_text())["max_model_len"] == 1024
    # A re-run of the wizard finds it.
    again = CoreService(spec="L4", repository=repo)
    assert [(m.name, m.source) for m in again.existing_models()] == [("tiny", "org/tiny")]


def test_a_model_that_does_not_fit_is_shown_not_refused(backend):
    view = backend.plan(describe("L4"), [ModelChoice("org/tiny", "tiny", max_model_len=1024, min_concurrency=10**6)])
    assert not view.fits
    (plan,) = view.models
    assert not plan.fits and plan.reason


def test_cancelled_download_keeps_the_model_unfinished(backend, fake_hub, tmp_path):
    choice = ModelChoice("org/tiny", "tiny")
    view = backend.plan(describe("L4"), [choice])
    cancel = threading.Event()
    cancel.set()
    with pytest.raises(Cancelled):
        backend.download(view, choice, on_progress=lambda e: None, cancel=cancel)
    entry = load_manifest(tmp_path / "repo").get("tiny")
    assert entry is not None and not entry.complete
    assert not (tmp_path / "repo" / "tiny" / "config.pbtxt").exists()  # never served half-done


@pytest.mark.podman
def test_launch_and_talk_to_the_model(tmp_path, fake_hub, podman_service, standin_image, cdi_gpus, monkeypatch):
    from tests.fixtures_podman import free_port
    from wizard.serve import ServeOptions

    monkeypatch.setenv("CONTAINER_HOST", podman_service.url)
    options = ServeOptions(
        image=standin_image,
        name=podman_service.container_name(),
        http_port=free_port(),
        grpc_port=free_port(),
        metrics_port=free_port(),
    )
    backend = CoreService(spec="H100-80GB", repository=tmp_path / "repo", serve_options=options)
    choice = ModelChoice("org/tiny", "tiny", max_model_len=1024)
    view = backend.plan(describe("H100-80GB"), [choice])
    backend.download(view, choice, on_progress=lambda e: None, cancel=threading.Event())
    backend.write_repository(view, [choice])
    events = []
    try:
        endpoints = backend.launch(view, on_event=events.append, cancel=threading.Event())
        assert endpoints.http == f"http://127.0.0.1:{options.http_port}"
        assert endpoints.models == ("tiny",)
        states = [(e.name, e.state) for e in events if hasattr(e, "state")]
        assert states[-1] == ("tiny", "ready") and ("tiny", "loading") in states
        reply = "".join(backend.generate_stream(endpoints, "tiny", "hello there"))
        assert "hello there" in reply  # the stand-in echoes the prompt
    finally:
        from wizard import launcher, podman_conn

        client = podman_conn.connect()
        launcher.down(client, options.name)
        client.close()


def test_the_wizard_knows_when_the_repositorys_models_are_running(tmp_path, fake_nvml, monkeypatch):
    # Running engines are missing from NVML's free memory already: the plan must not count them twice.
    from types import SimpleNamespace

    from tests.fixtures_nvml import h100
    from wizard.gpus import discover

    fake_nvml([h100(0)])
    (tmp_path / "repo").mkdir()
    asked = []
    models = [SimpleNamespace(name="a", state="READY"), SimpleNamespace(name="b", state="UNAVAILABLE")]
    monkeypatch.setattr(
        "wizard.serve.server_status", lambda repo: asked.append(repo) or SimpleNamespace(state="running", models=models)
    )
    backend = CoreService(repository=tmp_path / "repo")
    inventory = discover()
    # Only what is loaded holds memory: a model that failed to load (b) does not.
    assert backend.session(inventory).running == {"a"} and backend.session(inventory).running == {"a"}
    assert len(asked) == 1  # asked once per run
    assert CoreService(repository=tmp_path / "repo").session(describe("H100")).running == frozenset()  # described


def test_a_broken_check_is_a_row_not_a_crash(tmp_path, monkeypatch):
    backend = CoreService(spec="L4", repository=tmp_path / "repo")
    monkeypatch.setattr(backend, "_hub_row", lambda: (_ for _ in ()).throw(ValueError("bad config.toml")))
    rows = {c.key: c for c in backend.machine_checks(describe("L4"))}
    assert rows["hf-login"].status == "fail" and "bad config.toml" in rows["hf-login"].summary
    assert "disk" in rows  # the rows after it still come


def test_the_wizard_applies_changed_budgets_before_the_first_download(tmp_path):
    # The wizard downloads model by model and writes at the end; quitting in between must never
    # leave old and new budgets side by side (the new model counts on the smaller ones).
    from tests.fixtures_repository import write_model_folder
    from tests.planner_data import write_real_model_folder
    from wizard.add_flow import AddRequest, execute_add, prepare_add
    from wizard.repository import Repository

    big = write_real_model_folder(tmp_path / "l8", "Llama-3.1-8B")
    small = write_model_folder(tmp_path / "tiny")
    root = tmp_path / "repo"
    repo = Repository.open(root, create=True)
    execute_add(repo, prepare_add(repo, [AddRequest(str(big))], inventory=describe("L4"), fill=True))

    backend = CoreService(spec="L4", repository=root)
    choice = ModelChoice(str(small), "tiny")
    view = backend.plan(describe("L4"), [choice])
    assert view.fits and [c.new.name for c in view.raw.changed] == ["l8"]
    backend.download(view, choice, on_progress=lambda e: None, cancel=threading.Event())
    served = {
        p.parent.parent.name: json.loads(p.read_text())["gpu_memory_utilization"] for p in root.glob("*/1/model.json")
    }
    assert sum(served.values()) <= 0.95, served  # quitting here is safe
    entry = Repository.open(root).manifest.get("tiny")
    backend.write_repository(view, [choice])
    after = Repository.open(root).manifest.get("tiny")
    assert after.complete and after.files == entry.files  # not re-recorded, not fetched again


def test_a_prompt_the_server_cannot_answer_is_one_line_not_a_crash(tmp_path):
    """generate_stream speaks the wizard's errors (a ModelwizError with a fix), never TritonHttpError."""
    from tests.fixtures_podman import free_port
    from wizard.errors import ModelwizError
    from wizard.service import Endpoints

    service = CoreService(spec="L4", repository=tmp_path / "repo")
    nowhere = Endpoints(http=f"http://127.0.0.1:{free_port()}", grpc="", metrics="")
    with pytest.raises(ModelwizError, match="tiny failed to answer") as caught:
        "".join(service.generate_stream(nowhere, "tiny", "hello"))
    assert caught.value.hint and "server log" in caught.value.hint
