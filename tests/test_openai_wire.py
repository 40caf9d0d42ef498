"""The OpenAI-compatible API wired through modelwiz: the container's command and ports, which model
chats with which template, the exports, the endpoints text and `modelwiz chat` (no podman here)."""

from __future__ import annotations

import io
import sys
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import kubernetes_validate
import pytest

from tests.export_helpers import export_facts, make_repository
from tests.fixtures_chat import MOUNT, write_model
from tests.openai_standin import StandIn
from wizard.cli import main
from wizard.container import LABEL_OPENAI, create_kwargs, launch_spec_for, spec_labels
from wizard.endpoints import render_endpoints, spec_endpoints
from wizard.export_kube import KubeOptions, kube_objects
from wizard.export_systemd import quadlet_unit
from wizard.launch_inputs import HostFacts, LaunchInputs, build_launch_spec
from wizard.openai_frontend import FRONTEND_MAIN
from wizard.openai_models import chat_server
from wizard.serve_options import ServeOptions, options_from_labels

IMAGE = "nvcr.io/nvidia/tritonserver:26.08-vllm-python-py3"


def inputs(root: Path, *models: str) -> LaunchInputs:
    return LaunchInputs(root=root, models=models, devices=("0",), image=IMAGE, mount_point=MOUNT, from_manifest=False)


HOST = HostFacts(rootless=True, selinux=False)


def test_the_server_runs_the_frontend_with_the_first_chat_models_weights_as_tokenizer(tmp_path):
    write_model(tmp_path, "base", None)
    write_model(tmp_path, "qwen", "qwen2.5-7b-instruct")
    write_model(tmp_path, "qwen-ft", "qwen2.5-7b-instruct")  # a fine-tune: the same template
    write_model(tmp_path, "llama", "llama-3.2-3b-instruct")
    spec = build_launch_spec(inputs(tmp_path, "base", "qwen", "qwen-ft", "llama"), ServeOptions(), HOST)
    command = spec.command
    assert command[:2] == ["python3", FRONTEND_MAIN]
    assert command[command.index("--tokenizer") + 1] == f"{MOUNT}/qwen/weights"  # inside the container
    assert command[command.index("--model-control-mode") + 1] == "explicit" and "--load-model" not in command
    assert command[command.index("--enable-kserve-frontends") : command.index("--enable-kserve-frontends") + 5] == [
        "--enable-kserve-frontends",
        "--kserve-http-port",
        "8000",
        "--kserve-grpc-port",
        "8001",
    ]
    assert dict(spec.environment)["HF_HUB_OFFLINE"] == "1"  # tokenizer files never come from the Hub
    only = dict(spec.completions_only)
    assert set(only) == {"base", "llama"}
    assert "no chat template" in only["base"] and "differs from qwen's" in only["llama"]
    # Published: /v2 on 8000/8001, the API on 9000, and the metrics port reaches the frontend's /metrics.
    assert create_kwargs(spec)["ports"] == {
        "8000/tcp": ("127.0.0.1", 8000),
        "8001/tcp": ("127.0.0.1", 8001),
        "9000/tcp": [("127.0.0.1", 9000), ("127.0.0.1", 8002)],
    }
    assert spec.openai_url == "http://127.0.0.1:9000/v1" and spec.metrics_url == "http://127.0.0.1:8002/metrics"


def test_no_openai_and_images_without_the_frontend_serve_v2_only(tmp_path):
    write_model(tmp_path, "qwen", "qwen2.5-7b-instruct")
    off = build_launch_spec(inputs(tmp_path, "qwen"), ServeOptions(openai=False), HOST)
    assert off.command[0] == "tritonserver" and off.openai_url is None and 9000 not in off.host_ports
    assert spec_labels(off)[LABEL_OPENAI] == "off"
    for image, why in (
        ("nvcr.io/nvidia/tritonserver:24.10-vllm-python-py3", "has no OpenAI-compatible frontend"),
        ("nvcr.io/nvidia/tritonserver:25.09-vllm-python-py3", "cannot load models one at a time"),
        ("localhost/triton:mine", "has no OpenAI-compatible frontend"),
    ):
        spec = build_launch_spec(inputs(tmp_path, "qwen"), ServeOptions(image=image), HOST)
        assert spec.command[0] == "tritonserver" and why in (spec.openai_off or "")
        assert "serving /v2 only" in render_endpoints(spec_endpoints(spec))[0]


def test_reruns_keep_the_choice_and_the_tokenizer_and_ports_give_way(tmp_path):
    write_model(tmp_path, "a-llama", "llama-3.2-3b-instruct")
    write_model(tmp_path, "qwen", "qwen2.5-7b-instruct")
    first = build_launch_spec(inputs(tmp_path, "qwen"), ServeOptions(openai_port=9100), HOST)
    labels = {**spec_labels(first), "name": first.name}
    running = options_from_labels(labels)
    assert running.openai is True and running.openai_port == 9100
    # A model added later sorts first, but the running server keeps chatting with qwen's tokenizer.
    host = replace(HOST, running=running, running_chat_model="qwen")
    again = build_launch_spec(inputs(tmp_path, "a-llama", "qwen"), ServeOptions(), host)
    assert again.chat_model == "qwen" and again.openai_port == 9100
    assert dict(again.completions_only).keys() == {"a-llama"}
    off = options_from_labels({**spec_labels(replace(first, openai_port=None, openai_off="--no-openai")), "name": "x"})
    assert off.openai is False
    # The default OpenAI port gives way to a port the user took for something else.
    moved = build_launch_spec(inputs(tmp_path, "qwen"), ServeOptions(http_port=9000), HOST)
    assert moved.openai_port == 9001


def test_chat_server_groups_by_rendered_template(tmp_path):
    write_model(tmp_path, "gemma", "gemma-2-2b-it")
    write_model(tmp_path, "phi", "phi-3.5-mini-instruct")
    server = chat_server(tmp_path, MOUNT, ["gemma", "phi"])
    assert server.chat_model == "gemma" and server.tokenizer == f"{MOUNT}/gemma/weights"
    rows = {m.name: m for m in server.models}
    assert rows["gemma"].chat and not rows["phi"].chat
    assert chat_server(tmp_path, MOUNT, ["gemma", "phi"], keep="phi").chat_model == "phi"


def test_exports_run_the_same_frontend(tmp_path):
    repo = make_repository(tmp_path / "repo", "meta-llama/Llama-2-7b-hf")
    facts = export_facts(repo)
    objects = kube_objects(facts, KubeOptions())
    for obj in objects:
        kubernetes_validate.validate(obj, "1.30", strict=True)
    deployment = next(o for o in objects if o["kind"] == "Deployment")
    (triton,) = deployment["spec"]["template"]["spec"]["containers"]
    assert triton["args"][:2] == ["python3", FRONTEND_MAIN]
    assert triton["args"][-1] == "--load-model=llama-2-7b-hf"  # no --model-load-thread-count: main.py lacks it
    service = next(o for o in objects if o["kind"] == "Service")
    assert {"name": "openai", "port": 9000, "targetPort": "openai", "protocol": "TCP"} in service["spec"]["ports"]
    unit = quadlet_unit(facts)
    assert f"Exec=python3 {FRONTEND_MAIN}" in unit and "PublishPort=127.0.0.1:9000:9000/tcp" in unit


def test_endpoints_show_the_openai_url_first_with_examples(tmp_path):
    spec = launch_spec_for(
        tmp_path,
        models=["qwen", "base"],
        devices=["0"],
        image=IMAGE,
        openai_port=9000,
        chat_model="qwen",
        completions_only=(("base", "no template"),),
    )
    lines = render_endpoints(spec_endpoints(spec))
    assert lines[0] == "  OpenAI   http://127.0.0.1:9000/v1"
    text = "\n".join(lines)
    assert text.index("OpenAI") < text.index("HTTP     http://127.0.0.1:8000")
    assert "curl -s http://127.0.0.1:9000/v1/chat/completions" in text and "client.chat.completions.create" in text
    assert "completions only (no chat template of their own here): base" in text
    base = "\n".join(render_endpoints(spec_endpoints(spec), "base"))
    assert "/v1/completions" in base and "client.completions.create" in base


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn({"qwen": "ok", "cut": "cut", "garbled": "garbled"}).start()
    yield server
    server.stop()


def test_chat_holds_a_conversation_with_reset(standin, monkeypatch, capsys):
    monkeypatch.setattr(sys, "stdin", io.StringIO("hello\nand again\n/reset\nfresh\n"))
    assert main(["chat", "qwen", "--openai-url", standin.url, "-i", "--system", "be brief", "--max-tokens", "9"]) == 0
    out, err = capsys.readouterr()
    assert out.splitlines() == ["You said: hello", "You said: and again", "You said: fresh"]
    assert err.count("tokens/s") == 3 and "(conversation reset)" in err
    sent = [r["messages"] for r in standin.requests]
    assert [len(m) for m in sent] == [2, 4, 2]  # system + history, and history gone after /reset
    assert sent[1][2] == {"role": "assistant", "content": "You said: hello"}
    assert {r["max_tokens"] for r in standin.requests} == {9}


@pytest.mark.parametrize(("model", "says"), [("cut", "cut off"), ("garbled", "not a JSON object")])
def test_chat_errors_are_one_line_and_exit_1(standin, capsys, model, says):
    assert main(["chat", model, "--openai-url", standin.url, "--prompt", "hi"]) == 1
    err = capsys.readouterr().err
    assert says in err and "Traceback" not in err


def test_a_running_containers_status_renders_the_same_endpoints():
    from wizard.endpoints import status_endpoints
    from wizard.launcher import LaunchStatus
    from wizard.triton_http import ModelState

    status = LaunchStatus(
        name="modelwiz-triton",
        exists=True,
        state="running",
        url="http://127.0.0.1:8000",
        models=(ModelState("qwen", "1", "READY", ""), ModelState("old", "1", "UNAVAILABLE", "")),
        openai_url="http://127.0.0.1:9000/v1",
        grpc_address="127.0.0.1:8001",
        metrics_url="http://127.0.0.1:8002/metrics",
    )
    lines = render_endpoints(status_endpoints(status))
    assert lines[0] == "  OpenAI   http://127.0.0.1:9000/v1" and '"model": "qwen"' in lines[2]
    assert "  metrics  http://127.0.0.1:8002/metrics" in lines
