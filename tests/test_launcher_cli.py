"""`modelwiz up`, `chat`, `down` end to end through the CLI (real podman, stand-in Triton)."""

from __future__ import annotations

import pytest

from tests.fixtures_podman import free_port
from tests.test_launcher_podman import GOOD, write_model
from wizard.cli import main


def test_up_without_podman_says_how_to_start_it(tmp_path, monkeypatch, capsys):
    write_model(tmp_path, "m", model_json=GOOD)
    monkeypatch.setenv("CONTAINER_HOST", f"unix://{tmp_path}/no.sock")
    code = main(["up", "--repository", str(tmp_path), "--image", "localhost/x:1"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 1
    assert err[-1].startswith("modelwiz: error: cannot reach the podman service")
    assert "podman system service --time=0" in err[-1] and "Traceback" not in "\n".join(err)


def test_up_with_an_empty_repository_is_bad_input(tmp_path, capsys):
    code = main(["up", "--repository", str(tmp_path), "--image", "localhost/x:1"])
    assert code == 2
    assert "ready to serve" in capsys.readouterr().err


@pytest.mark.podman
def test_up_chat_down(podman_service, standin_image, cdi_gpus, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("CONTAINER_HOST", podman_service.url)
    write_model(tmp_path, "m1", model_json=GOOD)
    name = podman_service.container_name()
    http = free_port()
    ports = ["--http-port", str(http), "--grpc-port", str(free_port()), "--metrics-port", str(free_port())]
    assert main(["up", "--repository", str(tmp_path), "--image", standin_image, "--name", name, *ports]) == 0
    out = capsys.readouterr().out
    assert f"HTTP     http://127.0.0.1:{http}" in out
    assert f"curl -s -X POST http://127.0.0.1:{http}/v2/models/m1/generate" in out
    assert '"max_tokens": 64' in out and f"modelwiz chat m1 --name {name}" in out

    assert main(["chat", "m1", "--name", name, "--prompt", "hi you", "--max-tokens", "5"]) == 0
    assert capsys.readouterr().out == "echo: hi you \n"
    assert main(["chat", "nope", "--name", name, "--prompt", "x"]) == 1
    assert "model nope is not loaded" in capsys.readouterr().err

    assert main(["down", "--name", name]) == 0
    assert f"stopped and removed {name}" in capsys.readouterr().out
    assert main(["down", "--name", name]) == 0
    assert "nothing to do" in capsys.readouterr().out
