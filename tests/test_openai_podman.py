"""The OpenAI-compatible API end to end: `modelwiz add MODEL --yes` from the fake Hub starts the
stand-in Triton image tagged as a 26.08 image, whose stand-in of Triton's OpenAI frontend
(tests/standin/openai_main.sh) takes main.py's flags and answers with the frontend's shapes."""

from __future__ import annotations

import io
import json
import sys

import pytest

from tests.fakehub import FakeRepo
from tests.fixtures_chat import TEMPLATES
from tests.fixtures_hub import tiny_model_files
from wizard.cli import main
from wizard.core_service import CoreService
from wizard.service import curl_command


def chat_repo(repo_id: str, template_folder: str | None) -> FakeRepo:
    files = tiny_model_files((1000,))
    if template_folder:
        files["tokenizer_config.json"] = (TEMPLATES / template_folder / "tokenizer_config.json").read_bytes()
    return FakeRepo(repo_id, files, info={"tags": ["text-generation"]})


@pytest.mark.podman
def test_add_serves_the_openai_api_that_the_sdk_and_chat_use(
    tmp_path, fake_hub, podman_service, podman_client, frontend_image, cdi_gpus, monkeypatch, capsys
):
    import openai

    from tests.fixtures_podman import free_port

    monkeypatch.setenv("CONTAINER_HOST", podman_service.url)
    fake_hub.add(chat_repo("org/qwen-chat", "qwen2.5-7b-instruct"))
    fake_hub.add(chat_repo("org/llama-chat", "llama-3.2-3b-instruct"))
    repo = tmp_path / "r"
    name, openai_port = podman_service.container_name(), free_port()
    ports = ["--http-port", str(free_port()), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    gpus = ["--gpus", "H100-80GB"]
    # The ports are free ones (other tests run beside this one): `up` takes them, then `add` finds
    # the server serving this repository and keeps them, as a user's re-run does.
    assert main(["add", "org/qwen-chat", "--repository", str(repo), *gpus, "--yes", "--no-launch"]) == 0
    up = ["up", "--repository", str(repo), "--image", frontend_image, "--name", name, *ports]
    assert main([*up, "--openai-port", str(openai_port)]) == 0
    out = capsys.readouterr().out
    base = f"http://127.0.0.1:{openai_port}/v1"
    try:
        assert out.index(f"OpenAI   {base}") < out.index("HTTP     http://127.0.0.1:")
        assert f"curl -s {base}/chat/completions" in out and f'OpenAI(base_url="{base}"' in out
        container = podman_client.containers.get(name)
        args = container.attrs["Config"]["Cmd"]
        assert args[:2] == ["python3", "/opt/tritonserver/python/openai/openai_frontend/main.py"]
        assert "--tokenizer" in args and args[args.index("--tokenizer") + 1].endswith("/qwen-chat/qwen-chat")

        client = openai.OpenAI(base_url=base, api_key="none")
        assert [m.id for m in client.models.list().data] == ["qwen-chat"]
        stream = client.chat.completions.create(
            model="qwen-chat", messages=[{"role": "user", "content": "hello there"}], max_tokens=32, stream=True
        )
        text = "".join(chunk.choices[0].delta.content or "" for chunk in stream if chunk.choices)
        assert text == "echo: hello there (turn 1)"

        # A second model whose template differs: loaded into the running server, completions-only.
        assert main(["add", "org/llama-chat", "--repository", str(repo), *gpus, "--yes"]) == 0
        captured = capsys.readouterr()
        assert "llama-chat is completions-only at /v1/chat/completions" in captured.err
        assert sorted(m.id for m in client.models.list().data) == ["llama-chat", "qwen-chat"]
        assert container.attrs["State"]["StartedAt"] == podman_client.containers.get(name).attrs["State"]["StartedAt"]
        capsys.readouterr()
        assert main(["status", "--repository", str(repo), "--json"]) == 0
        status = json.loads(capsys.readouterr().out)
        chat = {m["name"]: m["openai"] for m in status["models"]}
        assert chat["qwen-chat"]["chat"] is True
        assert chat["llama-chat"]["chat"] is False and "differs from qwen-chat's" in chat["llama-chat"]["reason"]
        assert status["server"]["openai_url"] == base
        # The home screen's view of the same server: the completions-only model gets a completions curl.
        endpoints = CoreService(repository=repo).server_status().endpoints
        assert endpoints is not None and endpoints.completions_only == ("llama-chat",)
        assert f"curl -s {base}/completions" in curl_command(endpoints, "llama-chat")
        assert f"curl -s {base}/chat/completions" in curl_command(endpoints, "qwen-chat")

        # `modelwiz chat` holds a conversation over /v1/chat/completions (history, /reset).
        monkeypatch.setattr(sys, "stdin", io.StringIO("first question\nsecond one\n/reset\nafter reset\n"))
        assert main(["chat", "qwen-chat", "--name", name, "--interactive"]) == 0
        out, err = capsys.readouterr()
        assert "echo: first question (turn 1)" in out and "echo: second one (turn 2)" in out
        assert "echo: after reset (turn 1)" in out
        assert "tokens/s" in err
        # A completions-only model chats over /v2 with its own template rendered here.
        monkeypatch.setattr(sys, "stdin", io.StringIO("hi\n"))
        assert main(["chat", "llama-chat", "--name", name, "-i"]) == 0
        out, err = capsys.readouterr()
        assert "<|start_header_id|>user<|end_header_id|>" in out and "hi" in out
        assert "its own chat template over /v2" in err
    finally:
        assert main(["down", "--name", name]) == 0
