"""Chat templates of popular models render the prompts those models document (see
tests/data/chat_templates/SOURCES.md for where each template comes from)."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

import pytest

from tests.fixtures_chat import TEMPLATES
from wizard.chat_template import ChatTemplate, load_chat_template
from wizard.errors import ModelwizError

SYSTEM = {"role": "system", "content": "You are a helpful assistant."}
TURNS = [
    {"role": "user", "content": "Hello!"},
    {"role": "assistant", "content": "Hi! How can I help?"},
    {"role": "user", "content": "What is 2+2?"},
]


def template(folder: str) -> ChatTemplate:
    loaded = load_chat_template(TEMPLATES / folder)
    assert loaded is not None
    return loaded


def test_llama_3_header_turns_with_the_system_message_and_a_fixed_date():
    prompt = template("llama-3.2-3b-instruct").render([SYSTEM, *TURNS], date_string="26 Jul 2024")
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
        "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n"
        "You are a helpful assistant.<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nHello!<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\nHi! How can I help?<|eot_id|>"
        "<|start_header_id|>user<|end_header_id|>\n\nWhat is 2+2?<|eot_id|>"
        "<|start_header_id|>assistant<|end_header_id|>\n\n"
    )


def test_llama_3_takes_today_from_strftime_now():
    prompt = template("llama-3.2-3b-instruct").render(TURNS)
    assert f"Today Date: {datetime.now():%d %b %Y}\n\n<|eot_id|>" in prompt


def test_qwen2_5_chatml_with_the_system_message():
    prompt = template("qwen2.5-7b-instruct").render([SYSTEM, *TURNS])
    assert prompt == (
        "<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n"
        "<|im_start|>assistant\nHi! How can I help?<|im_end|>\n"
        "<|im_start|>user\nWhat is 2+2?<|im_end|>\n"
        "<|im_start|>assistant\n"
    )


def test_qwen2_5_adds_its_own_system_message_when_none_is_given():
    prompt = template("qwen2.5-7b-instruct").render(TURNS[:1])
    assert prompt == (
        "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant.<|im_end|>\n"
        "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n"
    )


def test_qwen2_5_tools_go_through_the_sandboxed_tojson():
    tool = {"type": "function", "function": {"name": "add", "description": "adds <a> & <b>"}}
    prompt = template("qwen2.5-7b-instruct").render(TURNS[:1], tools=[tool])
    assert '\n{"type": "function", "function": {"name": "add", "description": "adds <a> & <b>"}}\n</tools>' in prompt


def test_mistral_puts_the_system_message_into_the_last_user_turn():
    prompt = template("mistral-nemo-instruct-2407").render([SYSTEM, *TURNS])
    assert prompt == (
        "<s>[INST]Hello![/INST]Hi! How can I help?</s>[INST]You are a helpful assistant.\n\nWhat is 2+2?[/INST]"
    )


def test_mistral_refuses_turns_that_do_not_alternate():
    with pytest.raises(ModelwizError, match="conversation roles must alternate") as caught:
        template("mistral-nemo-instruct-2407").render([TURNS[0], TURNS[0]])
    assert "mistral-nemo-instruct-2407/tokenizer_config.json refused the conversation" in caught.value.one_line()
    assert caught.value.hint


def test_gemma_2_model_turns_without_a_system_message():
    prompt = template("gemma-2-2b-it").render(TURNS)
    assert prompt == (
        "<bos><start_of_turn>user\nHello!<end_of_turn>\n"
        "<start_of_turn>model\nHi! How can I help?<end_of_turn>\n"
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_gemma_2_refuses_a_system_message_with_a_one_line_error():
    with pytest.raises(ModelwizError, match="System role not supported"):
        template("gemma-2-2b-it").render([SYSTEM, *TURNS])


def test_gemma_3_from_chat_template_jinja_prefixes_the_first_user_turn_with_the_system_message():
    loaded = template("gemma-3-1b-it")
    assert loaded.origin.name == "chat_template.jinja"
    assert loaded.render([SYSTEM, *TURNS]) == (
        "<bos><start_of_turn>user\nYou are a helpful assistant.\n\nHello!<end_of_turn>\n"
        "<start_of_turn>model\nHi! How can I help?<end_of_turn>\n"
        "<start_of_turn>user\nWhat is 2+2?<end_of_turn>\n"
        "<start_of_turn>model\n"
    )


def test_phi_3_turns_and_generation_prompt():
    prompt = template("phi-3.5-mini-instruct").render([SYSTEM, *TURNS])
    assert prompt == (
        "<|system|>\nYou are a helpful assistant.<|end|>\n"
        "<|user|>\nHello!<|end|>\n"
        "<|assistant|>\nHi! How can I help?<|end|>\n"
        "<|user|>\nWhat is 2+2?<|end|>\n"
        "<|assistant|>\n"
    )


def test_phi_3_without_generation_prompt_ends_with_eos():
    prompt = template("phi-3.5-mini-instruct").render(TURNS[:2], add_generation_prompt=False)
    assert prompt.endswith("<|assistant|>\nHi! How can I help?<|end|>\n<|endoftext|>")


def test_fingerprints_differ_between_families_and_match_for_a_copy(tmp_path: Path):
    folders = [p.name for p in TEMPLATES.iterdir() if p.is_dir()]
    prints = {template(f).fingerprint for f in folders}
    assert len(prints) == len(folders)
    copy = tmp_path / "finetune"
    copy.mkdir()
    (copy / "tokenizer_config.json").write_text(
        (TEMPLATES / "qwen2.5-7b-instruct" / "tokenizer_config.json").read_text()
    )
    assert template_at(copy).fingerprint == template("qwen2.5-7b-instruct").fingerprint


def test_a_different_eos_token_changes_the_fingerprint(tmp_path: Path):
    config = json.loads((TEMPLATES / "phi-3.5-mini-instruct" / "tokenizer_config.json").read_text())
    config["eos_token"] = "</s>"
    (tmp_path / "tokenizer_config.json").write_text(json.dumps(config))
    assert template_at(tmp_path).fingerprint != template("phi-3.5-mini-instruct").fingerprint


def template_at(folder: Path) -> ChatTemplate:
    loaded = load_chat_template(folder)
    assert loaded is not None
    return loaded


def write_config(folder: Path, config: dict[str, object]) -> None:
    (folder / "tokenizer_config.json").write_text(json.dumps(config))


def test_a_base_model_without_a_template_has_none(tmp_path: Path):
    write_config(tmp_path, {"bos_token": "<s>", "eos_token": "</s>"})
    assert load_chat_template(tmp_path) is None


def test_named_templates_use_default_unless_a_name_is_given(tmp_path: Path):
    write_config(
        tmp_path,
        {
            "chat_template": [
                {"name": "default", "template": "D{{ messages[0].content }}"},
                {"name": "tool_use", "template": "T{{ tools | length }}"},
            ]
        },
    )
    assert template_at(tmp_path).render(TURNS[:1]) == "DHello!"
    tool_use = load_chat_template(tmp_path, name="tool_use")
    assert tool_use is not None and tool_use.render(TURNS[:1], tools=[1, 2]) == "T2"
    with pytest.raises(ModelwizError, match="no chat template named 'rag'") as caught:
        load_chat_template(tmp_path, name="rag")
    assert caught.value.hint == "choose one of: default, tool_use"


def test_named_templates_without_a_default_need_a_name(tmp_path: Path):
    write_config(tmp_path, {"chat_template": [{"name": "rag", "template": "R"}]})
    with pytest.raises(ModelwizError, match="no chat template named 'default'"):
        load_chat_template(tmp_path)
    assert template_at_named(tmp_path, "rag").render([]) == "R"


def template_at_named(folder: Path, name: str) -> ChatTemplate:
    loaded = load_chat_template(folder, name=name)
    assert loaded is not None
    return loaded


def test_special_tokens_as_added_token_dicts_and_from_special_tokens_map(tmp_path: Path):
    write_config(
        tmp_path,
        {"chat_template": "{{ bos_token }}|{{ eos_token }}", "bos_token": {"__type": "AddedToken", "content": "<s>"}},
    )
    (tmp_path / "special_tokens_map.json").write_text(json.dumps({"eos_token": {"content": "</s>"}}))
    assert template_at(tmp_path).render([]) == "<s>|</s>"


def test_chat_template_jinja_wins_over_the_config_key(tmp_path: Path):
    write_config(tmp_path, {"chat_template": "from config"})
    (tmp_path / "chat_template.jinja").write_text("from file")
    assert template_at(tmp_path).render([]) == "from file"


def test_generation_blocks_and_loop_controls_render_like_transformers(tmp_path: Path):
    write_config(
        tmp_path,
        {
            "chat_template": "{% for m in messages %}{% if m.role == 'user' %}{% continue %}{% endif %}"
            "{% generation %}[{{ m.content }}]{% endgeneration %}{% endfor %}"
        },
    )
    assert template_at(tmp_path).render(TURNS) == "[Hi! How can I help?]"


def test_the_sandbox_refuses_attribute_tricks(tmp_path: Path):
    write_config(tmp_path, {"chat_template": "{{ messages.__class__.__mro__ }}"})
    with pytest.raises(ModelwizError, match="refused the conversation"):
        template_at(tmp_path).render(TURNS)


def test_the_sandbox_refuses_mutating_the_messages(tmp_path: Path):
    write_config(tmp_path, {"chat_template": "{{ messages.append(1) }}"})
    with pytest.raises(ModelwizError, match="refused the conversation"):
        template_at(tmp_path).render(TURNS)


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("{not json", "cannot read"),
        ("[1, 2]", "is not a JSON object"),
        ('{"chat_template": 3}', "neither a string nor a list of named templates"),
    ],
)
def test_broken_tokenizer_configs_are_one_line_errors(tmp_path: Path, content: str, message: str):
    (tmp_path / "tokenizer_config.json").write_text(content)
    with pytest.raises(ModelwizError, match=message) as caught:
        load_chat_template(tmp_path)
    assert "\n" not in caught.value.one_line()


def test_a_missing_tokenizer_config_says_to_download(tmp_path: Path):
    with pytest.raises(ModelwizError, match="is missing") as caught:
        load_chat_template(tmp_path)
    assert caught.value.hint and "download" in caught.value.hint


def test_a_template_with_a_syntax_error_is_reported_with_its_line(tmp_path: Path):
    write_config(tmp_path, {"chat_template": "ok\n{% if %}"})
    with pytest.raises(ModelwizError, match=r"is not valid Jinja \(line 2"):
        template_at(tmp_path).render(TURNS)
