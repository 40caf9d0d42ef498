"""`modelwiz chat` against a server whose reply stream is broken: an error (exit 1), never raw text."""

from __future__ import annotations

import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from wizard.cli import main

STREAMS = {
    "garbage": b"data: {not json\xff\xfe\n\n",
    "drop": b'data: {"text_output": "hel',
    "huge-line": b"A" * (17 * 1024 * 1024),
    "empty": b"",
    "good": b'data: {"text_output": "hel"}\n\ndata: {"text_output": "lo"}\n\n',
}


class _Server(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"
    body = b""

    def log_message(self, *args) -> None:
        return None

    def do_GET(self) -> None:  # health and model readiness
        self.send_response(200)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(self.body)


@pytest.fixture
def triton():
    servers = []

    def start(kind: str) -> str:
        handler = type("Handler", (_Server,), {"body": STREAMS[kind]})
        server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        return f"http://127.0.0.1:{server.server_address[1]}"

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("kind", "said"),
    [
        ("garbage", "not JSON"),
        ("drop", "cut off"),
        ("huge-line", "longer than 16 MiB"),
        ("empty", "without sending any event"),
    ],
)
def test_a_chat_stream_that_is_cut_or_not_json_is_an_error(triton, capsys, kind, said):
    assert main(["chat", "alpha", "--url", triton(kind), "--prompt", "hi"]) == 1
    out, err = capsys.readouterr()
    assert err.count("\n") == 1 and said in err and "alpha failed to answer" in err
    assert "AAAA" * 100 not in out + err


def test_a_good_chat_stream_is_printed(triton, capsys):
    assert main(["chat", "alpha", "--url", triton("good"), "--prompt", "hi"]) == 0
    assert capsys.readouterr().out == "hello\n"
