"""wizard.chat_session: the one owner of how a chat reaches a model, for `modelwiz chat` and the wizard.
Against the OpenAI frontend's stand-in (tests/openai_standin.py) and a /v2 stand-in (tests/v2_standin.py);
the home screen's chat panel (a real CoreService) takes the same routes."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from datetime import datetime
from typing import Any

import pytest
from textual.app import App
from textual.widgets import Input

from screens.home_panels import ChatScreen
from tests.fixtures_chat import MOUNT, write_model
from tests.fixtures_screens import text_of, wait_for
from tests.openai_standin import StandIn
from tests.v2_standin import REPLY, V2StandIn
from wizard.chat_session import ChatSession, ChatTarget, chat_target
from wizard.core_service import CoreService
from wizard.errors import ModelwizError
from wizard.launcher import LaunchStatus
from wizard.serve import completions_only
from wizard.service import Endpoints

ANSWER = "".join(REPLY)


def llama3(*turns: tuple[str, str]) -> str:
    """What Llama 3.2's own template renders for `turns` (no system message: it adds its dated one)."""
    head = (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        f"Cutting Knowledge Date: December 2023\nToday Date: {datetime.now():%d %b %Y}\n\n<|eot_id|>"
    )
    body = "".join(f"<|start_header_id|>{role}<|end_header_id|>\n\n{text}<|eot_id|>" for role, text in turns)
    return head + body + "<|start_header_id|>assistant<|end_header_id|>\n\n"


@pytest.fixture
def openai() -> Iterator[StandIn]:
    server = StandIn({"qwen": "ok", "cut": "cut"}).start()
    yield server
    server.stop()


@pytest.fixture
def v2() -> Iterator[V2StandIn]:
    server = V2StandIn({"llama": "ok", "base": "ok", "qwen": "ok", "broken": "fail"}).start()
    yield server
    server.stop()


def test_the_openai_route_holds_the_conversation_and_times_each_reply(openai, v2):
    session = ChatSession("qwen", ChatTarget(http=v2.url, openai=openai.url), system="be brief", max_tokens=9)
    assert session.route == "openai" and session.notes == () and session.where.endswith("(chat completions)")
    assert "".join(session.send("hello")) == "You said: hello"
    assert session.stats and "tokens/s" in session.stats and session.tokens_per_second is not None
    assert "".join(session.send("again")) == "You said: again"
    session.reset()
    assert "".join(session.send("fresh")) == "You said: fresh"
    sent = [r["messages"] for r in openai.requests]
    assert [len(m) for m in sent] == [2, 4, 2]  # system + history; after reset the system message stays
    assert sent[1][2] == {"role": "assistant", "content": "You said: hello"}
    assert {r["max_tokens"] for r in openai.requests} == {9} and v2.bodies == []  # nothing over /v2


def test_the_template_route_sends_what_llama_3s_own_template_renders(tmp_path, v2):
    weights = write_model(tmp_path, "llama", "llama-3.2-3b-instruct")
    session = ChatSession("llama", ChatTarget(http=v2.url, weights=weights))
    assert session.route == "template" and session.where == f"{v2.url} (/v2 generate_stream)"
    assert session.notes == ("llama: its own chat template over /v2 (tokenizer_config.json)",)
    assert "".join(session.send("Hello!")) == ANSWER
    assert "".join(session.send("What is 2+2?")) == ANSWER
    assert v2.prompts == [
        llama3(("user", "Hello!")),
        llama3(("user", "Hello!"), ("assistant", ANSWER), ("user", "What is 2+2?")),
    ]
    assert all(b["parameters"]["max_tokens"] == 256 and b["parameters"]["stream"] for b in v2.bodies)
    assert session.stats and session.stats.endswith("tokens/s")


def test_a_model_without_a_template_gets_raw_text_and_is_told_so(tmp_path, v2):
    session = ChatSession("base", ChatTarget(http=v2.url, weights=write_model(tmp_path, "base", None)))
    assert session.route == "raw" and "raw text without the history" in session.notes[0]
    "".join(session.send("one"))
    "".join(session.send("two"))
    assert v2.prompts == ["one", "two"]


def test_where_a_model_chats_follows_the_servers_tokenizer(tmp_path, openai, v2):
    write_model(tmp_path, "qwen", "qwen2.5-7b-instruct")
    write_model(tmp_path, "llama", "llama-3.2-3b-instruct")
    where = {"repository": tmp_path, "mount_point": MOUNT, "chat_model": "qwen", "openai": openai.url}
    qwen = chat_target("qwen", v2.url, **where)
    assert qwen.openai == openai.url and qwen.weights == tmp_path / "qwen" / "weights"
    llama = chat_target("llama", v2.url, **where)  # the frontend would render it with qwen's template
    assert llama.openai is None and "differs from qwen's" in (llama.why_v2 or "")
    session = ChatSession("llama", llama)
    assert session.route == "template" and "differs from qwen's" in session.notes[0]
    off = chat_target("qwen", v2.url, repository=tmp_path, mount_point=MOUNT)  # --no-openai
    assert off.openai is None and off.why_v2 is None and off.weights == tmp_path / "qwen" / "weights"
    assert chat_target("qwen", v2.url, openai=openai.url) == ChatTarget(http=v2.url, openai=openai.url)


def test_completions_only_compares_with_the_servers_model_even_while_it_is_not_loaded(tmp_path):
    """The home screen's view of which served models chat at /v1: the frontend renders with its
    model's template whether that model is loaded now or not."""
    write_model(tmp_path, "qwen", "qwen2.5-7b-instruct")
    write_model(tmp_path, "qwen-copy", "qwen2.5-7b-instruct")
    write_model(tmp_path, "llama", "llama-3.2-3b-instruct")
    status = LaunchStatus(
        "s", True, "running", openai_url="http://127.0.0.1:9/v1", chat_model="qwen", mount_point=MOUNT
    )
    assert completions_only(tmp_path, status, ["qwen-copy", "llama"]) == ("llama",)  # qwen still loading
    assert completions_only(tmp_path, status, ["qwen", "qwen-copy", "llama"]) == ("llama",)
    assert completions_only(tmp_path, replace(status, openai_url=None), ["llama"]) == ()  # --no-openai


@pytest.mark.parametrize(
    ("model", "target", "says"),
    [
        ("gone", "openai", "is not served at"),
        ("cut", "openai", "cut off"),
        ("gone", "v2", "is not loaded at"),
        ("broken", "v2", "broken failed to answer: engine died"),
        ("x", "nowhere", "x failed to answer: Triton does not answer at"),
    ],
)
def test_failures_are_one_line_errors(openai, v2, model, target, says):
    urls = {"openai": ChatTarget(http=v2.url, openai=openai.url), "v2": ChatTarget(http=v2.url)}
    nowhere = ChatTarget(http="http://127.0.0.1:9")
    with pytest.raises(ModelwizError) as caught:
        "".join(ChatSession(model, urls.get(target, nowhere)).send("hi"))
    assert says in caught.value.message and "\n" not in caught.value.one_line() and caught.value.hint


class _ChatApp(App[None]):
    def __init__(self, service: CoreService, endpoints: Endpoints, model: str) -> None:
        super().__init__()
        self.panel = ChatScreen(service, endpoints, model)

    def on_mount(self) -> None:
        self.push_screen(self.panel)


async def ask(pilot: Any, app: _ChatApp, text: str) -> None:
    app.screen.query_one("#prompt", Input).value = text
    await pilot.press("enter")
    await wait_for(pilot, lambda: not app.panel.streaming, groups=["reply"])


async def test_the_home_screens_chat_panel_uses_the_models_own_template(tmp_path, openai, v2):
    root = tmp_path / "repo"
    write_model(root, "qwen", "qwen2.5-7b-instruct")
    write_model(root, "llama", "llama-3.2-3b-instruct")
    endpoints = Endpoints(
        http=v2.url, grpc="", metrics="", models=("qwen", "llama"), openai=openai.url + "/v1", mount_point=MOUNT,
        chat_model="qwen",
    )  # fmt: skip
    app = _ChatApp(CoreService(spec="L4", repository=root), endpoints, "llama")
    async with app.run_test() as pilot:
        await ask(pilot, app, "Hello!")
        assert text_of(app, "#reply") == ANSWER and "tokens/s" in text_of(app, "#stats")
        route = text_of(app, "#route")
        assert "differs from qwen's" in route and "its own chat template over /v2" in route
        await ask(pilot, app, "/reset")
        assert "reset" in text_of(app, "#reply")
        await ask(pilot, app, "Hello!")
    assert v2.prompts == [llama3(("user", "Hello!"))] * 2 and openai.requests == []


async def test_the_home_screens_chat_panel_chats_over_the_openai_api_where_the_model_does(tmp_path, openai, v2):
    root = tmp_path / "repo"
    write_model(root, "qwen", "qwen2.5-7b-instruct")
    endpoints = Endpoints(
        http=v2.url, grpc="", metrics="", models=("qwen",), openai=openai.url + "/v1", mount_point=MOUNT,
        chat_model="qwen",
    )  # fmt: skip
    app = _ChatApp(CoreService(spec="L4", repository=root), endpoints, "qwen")
    async with app.run_test() as pilot:
        await ask(pilot, app, "hello")
        assert text_of(app, "#reply") == "You said: hello" and text_of(app, "#route") == ""
        await ask(pilot, app, "and again")
        assert text_of(app, "#reply") == "You said: and again"
    assert [len(r["messages"]) for r in openai.requests] == [1, 3] and v2.bodies == []
