"""The OpenAI frontend's image support, command line and per-template server plan."""

from __future__ import annotations

import pytest

from wizard.errors import UsageError
from wizard.images import image_table
from wizard.openai_frontend import (
    FRONTEND_MAIN,
    FrontendArgs,
    FrontendFeatures,
    ServedModel,
    frontend_command,
    frontend_features,
    image_release,
    plan_frontends,
    tokenizer_groups,
)

NEW = FrontendFeatures((26, 7))
OLD = FrontendFeatures((25, 1))


@pytest.mark.parametrize(
    ("image", "release"),
    [
        ("nvcr.io/nvidia/tritonserver:26.07-vllm-python-py3", (26, 7)),
        ("26.07-vllm-python-py3", (26, 7)),
        ("localhost/tritonserver:24.12-vllm-python-py3", (24, 12)),
        ("nvcr.io/nvidia/tritonserver:26.07-py3", None),
        ("localhost/my-triton:latest", None),
    ],
)
def test_image_release_from_the_tag(image: str, release: tuple[int, int] | None):
    assert image_release(image) == release


def test_the_frontend_ships_from_24_12_on():
    assert frontend_features("nvcr.io/nvidia/tritonserver:24.11-vllm-python-py3") is None
    assert frontend_features("nvcr.io/nvidia/tritonserver:24.12-vllm-python-py3") == FrontendFeatures((24, 12))
    assert frontend_features("localhost/my-triton:latest") is None


def test_every_known_image_gets_an_answer_and_the_flags_arrive_in_release_order():
    answers = {info.short_tag: frontend_features(info.tag) for info in image_table()}
    with_frontend = [tag for tag, features in answers.items() if features is not None]
    assert with_frontend and with_frontend[0] == "24.12-vllm-python-py3"
    explicit = [tag for tag, features in answers.items() if features is not None and features.explicit_model_control]
    assert explicit[0] == "26.04-vllm-python-py3"
    features = FrontendFeatures((25, 8))
    assert features.chat_template_flag and features.default_max_tokens_flag and not features.explicit_model_control
    assert not FrontendFeatures((25, 4)).chat_template_flag


def test_command_for_a_new_image_serves_openai_and_kserve_with_explicit_control():
    args = FrontendArgs(
        model_repository="/models",
        tokenizer="/models/qwen/weights",
        kserve_http_port=8000,
        kserve_grpc_port=8001,
        model_control="explicit",
        load_models=("qwen", "qwen-coder"),
        default_max_tokens=1024,
    )
    assert frontend_command(args, NEW) == [
        "python3",
        FRONTEND_MAIN,
        "--model-repository",
        "/models",
        "--tokenizer",
        "/models/qwen/weights",
        "--host",
        "0.0.0.0",
        "--openai-port",
        "9000",
        "--enable-kserve-frontends",
        "--kserve-http-port",
        "8000",
        "--kserve-grpc-port",
        "8001",
        "--model-control-mode",
        "explicit",
        "--load-model",
        "qwen",
        "--load-model",
        "qwen-coder",
        "--default-max-tokens",
        "1024",
    ]


def test_command_for_an_old_image_passes_only_the_flags_it_has():
    command = frontend_command(FrontendArgs(model_repository="/models", tokenizer=None, openai_port=9100), OLD)
    assert command == [
        "python3",
        FRONTEND_MAIN,
        "--model-repository",
        "/models",
        "--host",
        "0.0.0.0",
        "--openai-port",
        "9100",
    ]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (FrontendArgs("/models", None, model_control="explicit"), "cannot load models after start"),
        (FrontendArgs("/models", None, chat_template="/t.jinja"), "has no --chat-template"),
        (FrontendArgs("/models", None, default_max_tokens=64), "has no --default-max-tokens"),
        (FrontendArgs("/models", None, kserve_http_port=8000), "go together"),
        (FrontendArgs("/models", None, load_models=("a",)), "need explicit model control"),
    ],
)
def test_flags_the_image_lacks_are_refused_with_a_fix(args: FrontendArgs, message: str):
    with pytest.raises(UsageError, match=message) as caught:
        frontend_command(args, OLD)
    assert caught.value.hint


def model(name: str, fingerprint: str | None) -> ServedModel:
    return ServedModel(name=name, tokenizer_dir=f"/models/{name}/weights", chat_fingerprint=fingerprint)


MODELS = [model("llama", "L"), model("qwen", "Q"), model("llama-ft", "L"), model("base", None)]


def test_groups_follow_the_chat_fingerprint_in_order_of_first_appearance():
    groups = tokenizer_groups(MODELS)
    assert [(g.fingerprint, g.tokenizer, g.models) for g in groups] == [
        ("L", "/models/llama/weights", ("llama", "llama-ft")),
        ("Q", "/models/qwen/weights", ("qwen",)),
        (None, None, ("base",)),
    ]


def test_new_images_give_every_group_its_own_server_and_every_templated_model_chat():
    plan = plan_frontends(MODELS, NEW)
    assert [(s.index, s.tokenizer, s.models, s.model_control) for s in plan.servers] == [
        (0, "/models/llama/weights", ("llama", "llama-ft"), "explicit"),
        (1, "/models/qwen/weights", ("qwen",), "explicit"),
        (2, None, ("base",), "explicit"),
    ]
    assert plan.chat == {"llama": "chat", "qwen": "chat", "llama-ft": "chat", "base": "completions-only"}
    assert plan.server_of("qwen").index == 1
    assert plan.note == "no chat template, completions only: base"


def test_one_template_needs_one_server_and_no_note():
    plan = plan_frontends(MODELS[:1] + MODELS[2:3], NEW)
    assert len(plan.servers) == 1 and plan.note is None
    assert plan.chat == {"llama": "chat", "llama-ft": "chat"}


def test_old_images_serve_everything_from_one_server_and_mark_the_other_templates_completions_only():
    plan = plan_frontends(MODELS, OLD)
    (server,) = plan.servers
    assert server.tokenizer == "/models/llama/weights"
    assert server.models == ("llama", "qwen", "llama-ft", "base") and server.model_control == "none"
    assert plan.chat == {"llama": "chat", "qwen": "completions-only", "llama-ft": "chat", "base": "completions-only"}
    assert plan.note is not None and "qwen, base" in plan.note and "26.04" in plan.note


def test_old_image_where_the_first_model_has_no_template_uses_the_first_that_has_one():
    plan = plan_frontends([model("base", None), model("qwen", "Q")], OLD)
    assert plan.servers[0].tokenizer == "/models/qwen/weights"
    assert plan.chat == {"base": "completions-only", "qwen": "chat"}


def test_nothing_to_serve_plans_no_server():
    assert plan_frontends([], NEW).servers == ()
