"""Failures that reach wizard.cli without a modelwiz message get their own one-line cause and fix
(never the catch-all's 'unexpected X ... report it'), and nothing shown carries a URL's password."""

from __future__ import annotations

import errno
import os
import socket
import subprocess
import sys
import threading

import pytest

from wizard.cli import explain, main
from wizard.redact import redact_text, redact_url


@pytest.fixture
def garbage_podman(tmp_path):
    """A unix socket that answers every request with HTTP 200 and a body that is not the API's."""
    path = tmp_path / "garbage.sock"
    server = socket.socket(socket.AF_UNIX)
    server.bind(str(path))
    server.listen(16)

    def serve():
        while True:
            try:
                conn, _ = server.accept()
            except OSError:
                return
            with conn:
                conn.recv(65536)
                conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nConnection: close\r\n\r\ngarbage!!")

    threading.Thread(target=serve, daemon=True).start()
    yield f"unix://{path}"
    server.close()


@pytest.mark.parametrize("command", [["status"], ["down"]])
def test_a_podman_socket_that_answers_garbage_is_named(garbage_podman, tmp_path, command):
    (tmp_path / "repo").mkdir()
    env = dict(
        os.environ, CONTAINER_HOST=garbage_podman, PYTHONPATH=os.getcwd(), MODEL_REPOSITORY=str(tmp_path / "repo")
    )
    proc = subprocess.run(
        [sys.executable, "-m", "wizard", *command], env=env, capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "not the podman API" in proc.stderr and "unexpected" not in proc.stderr


def test_podman_api_errors_are_named():
    from podman.errors import APIError

    line = explain(APIError("http://%2Ftmp%2Fx.sock/v5/libpod/containers/json (GET operation failed)")).one_line()
    assert "not the podman API" in line and "CONTAINER_HOST" in line


@pytest.mark.parametrize(
    ("error", "said", "code"),
    [
        (OSError(errno.ELOOP, "Too many levels of symbolic links", "/m/loop/" * 500), "symbolic links", 2),
        (OSError(errno.ENOSPC, "No space left on device", "/r/x"), "disk is full", 1),
        (PermissionError(errno.EACCES, "Permission denied", "/root/x"), "Permission denied", 1),
        (RecursionError("maximum recursion depth exceeded"), "nested too deeply", 2),
    ],
)
def test_known_failures_get_their_own_line(error, said, code):
    known = explain(error)
    assert known is not None and said in known.one_line() and known.exit_code == code
    assert len(known.one_line()) < 400  # a symlink loop's path is cut


def test_a_symlink_loop_under_a_local_model_folder_is_not_a_catch_all(tmp_path, capsys):
    folder = tmp_path / "m"
    folder.mkdir()
    (folder / "config.json").symlink_to(folder / "config.json")  # ELOOP when read
    assert main(["plan", str(folder), "--gpus", "H100-80GB"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "unexpected" not in err


def test_credentials_are_redacted_everywhere_a_url_is_shown(capsys):
    assert redact_url("http://u:p@h:1/x") == "http://***@h:1/x"
    assert redact_url("https://huggingface.co/x") == "https://huggingface.co/x"
    assert redact_text("cannot reach http://mirror:S3cret@10.0.0.1:8080/api and https://a@b/c") == (
        "cannot reach http://***@10.0.0.1:8080/api and https://***@b/c"
    )
    from wizard.cli import _report
    from wizard.errors import ModelwizError

    _report(ModelwizError("failed at http://u:S3cret@h/x", hint="see https://k:S3cret@h/y"))
    assert "S3cret" not in capsys.readouterr().err
