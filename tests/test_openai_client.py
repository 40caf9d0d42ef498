"""The OpenAI client against a local stand-in that speaks Triton's OpenAI frontend wire format, and the
real `openai` SDK against the same stand-in."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.openai_standin import StandIn
from wizard.errors import ModelwizError, UsageError
from wizard.openai_client import OpenAIClient, sse_data

CONVERSATION = [
    {"role": "system", "content": "Be brief."},
    {"role": "user", "content": "Hello there"},
    {"role": "assistant", "content": "Hi."},
    {"role": "user", "content": "count to three"},
]


@pytest.fixture
def standin() -> Iterator[StandIn]:
    server = StandIn({"qwen": "ok", "cut": "cut", "garbled": "garbled"}).start()
    yield server
    server.stop()


def test_models_lists_what_the_frontend_lists(standin: StandIn):
    models = OpenAIClient(standin.url).models()
    assert [(m.id, m.owned_by) for m in models] == [
        ("qwen", "Triton Inference Server"),
        ("cut", "Triton Inference Server"),
        ("garbled", "Triton Inference Server"),
    ]
    assert all(m.created == standin.created for m in models)


def test_a_v1_suffix_on_the_base_url_is_accepted(standin: StandIn):
    assert OpenAIClient(standin.url + "/v1/").base_url == standin.url
    assert OpenAIClient(standin.url + "/v1").models()[0].id == "qwen"


def test_streams_a_reply_and_counts_tokens_from_usage(standin: StandIn):
    stream = OpenAIClient(standin.url).chat_stream("qwen", CONVERSATION, max_tokens=64, temperature=0.2)
    pieces = list(stream)
    assert pieces == ["You", " said:", " count", " to", " three"]
    assert stream.text == "You said: count to three"
    assert stream.finish_reason == "stop"
    assert stream.stats is not None
    assert stream.stats.counted_from == "usage"
    assert stream.stats.completion_tokens == 5 and stream.stats.prompt_tokens == 7
    assert stream.stats.first_token_seconds is not None
    assert 0 < stream.stats.first_token_seconds <= stream.stats.seconds
    assert stream.stats.tokens_per_second == pytest.approx(5 / stream.stats.seconds)
    assert stream.stats.summary().startswith("5 tokens in ")
    (sent,) = standin.requests
    assert sent == {
        "model": "qwen",
        "messages": CONVERSATION,
        "max_tokens": 64,
        "stream": True,
        "temperature": 0.2,
        "stream_options": {"include_usage": True},
    }


def test_without_usage_the_tokens_are_counted_from_chunks(standin: StandIn):
    stream = OpenAIClient(standin.url).chat_stream("qwen", CONVERSATION[:2], max_tokens=3, include_usage=False)
    assert "".join(stream) == "You said: Hello"
    assert stream.stats is not None
    assert (stream.stats.counted_from, stream.stats.completion_tokens) == ("chunks", 3)
    assert stream.stats.summary().startswith("~3 tokens in ")
    assert "stream_options" not in standin.requests[0]


def test_a_cut_stream_is_a_one_line_error(standin: StandIn):
    stream = OpenAIClient(standin.url).chat_stream("cut", CONVERSATION, max_tokens=64)
    received: list[str] = []
    with pytest.raises(ModelwizError, match="the reply from cut was cut off") as caught:
        received.extend(stream)
    assert received == ["You", " said:"]
    assert stream.stats is None
    assert caught.value.hint and "\n" not in caught.value.one_line()


def test_a_non_json_chunk_is_a_one_line_error(standin: StandIn):
    stream = OpenAIClient(standin.url).chat_stream("garbled", CONVERSATION, max_tokens=64)
    with pytest.raises(
        ModelwizError, match="sent a chunk that is not a JSON object: 'Internal Server Error'"
    ) as caught:
        list(stream)
    assert caught.value.hint and "OpenAI port" in caught.value.hint


def test_an_unknown_model_shows_the_frontends_detail(standin: StandIn):
    with pytest.raises(
        ModelwizError, match=r"nope: Unknown model: nope \(HTTP 400 from .*/v1/chat/completions\)"
    ) as caught:
        OpenAIClient(standin.url).chat_stream("nope", CONVERSATION, max_tokens=8)
    assert caught.value.hint == "check the model name with `modelwiz status`"


def test_nothing_listening_says_how_to_start():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    with pytest.raises(
        ModelwizError, match=r"nothing answers at http://127.0.0.1:\d+/v1/models \(connection refused\)"
    ) as caught:
        OpenAIClient(f"http://127.0.0.1:{port}").models()
    assert caught.value.hint and "modelwiz up" in caught.value.hint


def test_a_kserve_port_is_not_an_openai_endpoint(standin: StandIn):
    with pytest.raises(ModelwizError, match="is not an OpenAI endpoint"):
        OpenAIClient(standin.url + "/somewhere-else").models()


def test_load_and_unload_in_explicit_mode():
    server = StandIn({"qwen": "ok"}, repository={"qwen": "ok", "llama": "ok"}, explicit=True).start()
    try:
        client = OpenAIClient(server.url)
        assert client.load("llama").id == "llama"
        assert [m.id for m in client.models()] == ["qwen", "llama"]
        with pytest.raises(ModelwizError, match=r"llama: Model 'llama' is already loaded \(HTTP 400"):
            client.load("llama")
        with pytest.raises(ModelwizError, match=r"Failed to load model 'nope': .* \(HTTP 500") as caught:
            client.load("nope")
        assert caught.value.hint and "log" in caught.value.hint
        client.unload("qwen")
        assert [m.id for m in client.models()] == ["llama"]
    finally:
        server.stop()


def test_load_on_a_frontend_started_without_explicit_control(standin: StandIn):
    with pytest.raises(ModelwizError, match="requires --model-control-mode=explicit"):
        OpenAIClient(standin.url).load("qwen")


def test_load_on_a_frontend_without_the_route_names_the_image_to_use():
    """Before 26.04 the route does not exist: FastAPI answers 404 Not Found."""
    server = StandIn({"qwen": "ok"}, management_routes=False).start()
    try:
        with pytest.raises(ModelwizError, match="cannot load or unload models") as caught:
            OpenAIClient(server.url).load("qwen")
    finally:
        server.stop()
    assert caught.value.hint and "26.04" in caught.value.hint


def test_ready_follows_health_ready(standin: StandIn):
    assert OpenAIClient(standin.url).ready()
    assert not OpenAIClient(standin.url + "/elsewhere").ready()


def test_a_bad_url_is_a_usage_error():
    with pytest.raises(UsageError, match="is not an http URL"):
        OpenAIClient("127.0.0.1:9000")


def test_error_chunks_in_the_openai_shape_are_reported():
    from wizard.openai_client import ChatStream

    events = iter(['{"error": {"message": "engine died", "type": "InternalServerError"}}'])
    stream = ChatStream(model="m", _events=events, _started=0.0, _where="here")
    with pytest.raises(ModelwizError, match="m failed mid-reply: engine died"):
        list(stream)


def test_sse_parsing_joins_multi_line_data_and_skips_comments():
    lines = [b": keep-alive\n", b'data: {"a":\n', b"data: 1}\n", b"\n", b"event: x\n", b"data:[DONE]\r\n", b"\r\n"]
    assert list(sse_data(lines)) == ['{"a":\n1}', "[DONE]"]


def test_standin_first_chunk_matches_the_frontends_exclude_unset_serialization(standin: StandIn):
    """The first event the frontend sends, byte for byte in shape (`model_dump_json(exclude_unset=True)`)."""
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", int(standin.url.rsplit(":", 1)[1]))
    conn.request(
        "POST", "/v1/chat/completions", json.dumps({"model": "qwen", "messages": CONVERSATION, "stream": True})
    )
    response = conn.getresponse()
    first = next(sse_data(response))
    conn.close()
    payload = json.loads(first)
    assert list(payload) == ["id", "choices", "created", "model", "system_fingerprint", "object", "usage"]
    assert payload["choices"] == [
        {
            "delta": {"content": "", "function_call": None, "role": "assistant"},
            "logprobs": None,
            "finish_reason": None,
            "index": 0,
        }
    ]
    assert payload["id"].startswith("cmpl-") and payload["object"] == "chat.completion.chunk"


def test_the_standin_entrypoint_accepts_the_command_modelwiz_builds(tmp_path):
    """The stand-in takes main.py's flags: the command from frontend_command starts it and
    /v1/models lists exactly the models it was told to load."""
    import subprocess
    import sys

    from wizard.openai_frontend import FrontendArgs, FrontendFeatures, frontend_command

    (tmp_path / "qwen").mkdir()
    (tmp_path / "qwen" / "config.pbtxt").write_text('backend: "vllm"\n')
    args = FrontendArgs(
        model_repository=str(tmp_path),
        tokenizer=str(tmp_path / "qwen"),
        host="127.0.0.1",
        openai_port=0,
        kserve_http_port=8000,
        kserve_grpc_port=8001,
        model_control="explicit",
        load_models=("qwen",),
        default_max_tokens=512,
    )
    command = frontend_command(args, FrontendFeatures((26, 7)))
    script = str(Path(__file__).parent / "openai_standin.py")
    process = subprocess.Popen([sys.executable, script, *command[2:]], stdout=subprocess.PIPE, text=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline()
        url = line.split(" running on ", 1)[1].split(" ", 1)[0]
        assert [m.id for m in OpenAIClient(url).models()] == ["qwen"]
    finally:
        process.terminate()
        process.wait(timeout=10)


openai = pytest.importorskip("openai", reason="the openai SDK is in the test extra")


def test_the_openai_sdk_lists_models_and_streams_a_chat(standin: StandIn):
    client = openai.OpenAI(base_url=standin.url + "/v1", api_key="not-needed", max_retries=0)
    assert [m.id for m in client.models.list()] == ["qwen", "cut", "garbled"]
    stream = client.chat.completions.create(
        model="qwen",
        messages=CONVERSATION,  # type: ignore[arg-type]
        max_tokens=32,
        stream=True,
        stream_options={"include_usage": True},
    )
    chunks = list(stream)
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "You said: count to three"
    assert chunks[0].choices[0].delta.role == "assistant"
    assert chunks[-1].choices == [] and chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 5


def test_the_openai_sdk_non_streaming_reply_and_error(standin: StandIn):
    client = openai.OpenAI(base_url=standin.url + "/v1", api_key="not-needed", max_retries=0)
    reply = client.chat.completions.create(model="qwen", messages=CONVERSATION, max_tokens=32)  # type: ignore[arg-type]
    assert reply.choices[0].message.content == "You said: count to three"
    assert reply.usage is not None and reply.usage.completion_tokens == 5
    with pytest.raises(openai.BadRequestError) as caught:
        client.chat.completions.create(model="nope", messages=CONVERSATION, max_tokens=8)  # type: ignore[arg-type]
    assert caught.value.status_code == 400 and caught.value.body == {"detail": "Unknown model: nope"}
