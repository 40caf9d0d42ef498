"""A chat session's history: roles alternate, a failed question is replaced, /reset keeps the system message."""

from __future__ import annotations

import pytest

from tests.fixtures_chat import TEMPLATES
from wizard.chat_template import load_chat_template
from wizard.conversation import Conversation


def test_turns_alternate_after_the_system_message():
    chat = Conversation(system="Be brief.")
    assert chat.ask("Hi") == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    chat.answer("Hello.")
    assert [m["role"] for m in chat.ask("More?")] == ["system", "user", "assistant", "user"]
    assert chat.exchanges == 1


def test_a_question_whose_reply_failed_is_replaced_not_doubled():
    chat = Conversation()
    chat.ask("first try")
    assert chat.ask("second try") == [{"role": "user", "content": "second try"}]


def test_reset_keeps_the_system_message():
    chat = Conversation(system="S")
    chat.ask("q")
    chat.answer("a")
    chat.reset()
    assert chat.messages() == [{"role": "system", "content": "S"}] and chat.exchanges == 0


def test_an_answer_without_a_question_is_a_bug():
    with pytest.raises(ValueError, match="needs a question"):
        Conversation().answer("a")


def test_a_strict_template_accepts_the_history_after_a_failed_question():
    """Mistral's template refuses two user turns in a row; the replaced question keeps it happy."""
    template = load_chat_template(TEMPLATES / "mistral-nemo-instruct-2407")
    assert template is not None
    chat = Conversation()
    chat.ask("q1")
    chat.answer("a1")
    chat.ask("lost")
    prompt = template.render(chat.ask("q2"))
    assert prompt == "<s>[INST]q1[/INST]a1</s>[INST]q2[/INST]"
