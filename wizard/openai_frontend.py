"""Triton's OpenAI-compatible frontend: which images have it, its command line, and which models can
chat on which server.

The frontend is triton-inference-server/server `python/openai/openai_frontend/main.py`, copied into
the images at /opt/tritonserver/python/openai by `build.py` since r24.12 (commit b3b886bc5, "Add
OpenAI-Compatible Server to NGC Container (#7895)"). It runs Triton in process and serves
`/v1/chat/completions`, `/v1/completions`, `/v1/models`, `/metrics` and `/health/ready` on one port,
plus the KServe `/v2` HTTP and gRPC endpoints when asked.

It holds ONE tokenizer for all its models (`TritonLLMEngine.__init__`: `self.tokenizer =
self._get_tokenizer(tokenizer)`, handed to every model's metadata: "One tokenizer is shared for all
loaded models", engine/triton_engine.py), so every model it serves at /v1/chat/completions gets that
tokenizer's chat template. `plan_frontends` therefore groups models by chat template: on images with
explicit model control (r26.04+, PR #8682) each group gets its own frontend; on older ones the first
group chats and the others are completions-only, and say so.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from wizard.errors import UsageError

FRONTEND_MAIN = "/opt/tritonserver/python/openai/openai_frontend/main.py"
FRONTEND_PYTHON = "python3"
OPENAI_PORT = 9000  # main.py `--openai-port` default
OPENAI_ROUTE_PREFIX = "/v1"
METRICS_ROUTE = "/metrics"  # served on the OpenAI port; the frontend never starts Triton's :8002 service
READY_ROUTE = "/health/ready"
# The tokenizer is a local folder; nothing may be fetched from the Hub at run time.
FRONTEND_ENVIRONMENT = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}

Release = tuple[int, int]  # (yy, mm) of a `yy.mm-vllm-python-py3` tag
ModelControl = Literal["none", "explicit"]
ChatStatus = Literal["chat", "completions-only"]

# The release branch where each capability first appears in main.py (checked on every branch r24.11..r26.08).
FIRST_RELEASE_WITH_FRONTEND: Release = (24, 12)  # build.py copies python/openai into the image
FIRST_RELEASE_WITH_CHAT_TEMPLATE_FLAG: Release = (25, 5)  # --chat-template, --tool-call-parser (#8134)
FIRST_RELEASE_WITH_STREAM_USAGE: Release = (25, 7)  # stream_options.include_usage (#8264)
FIRST_RELEASE_WITH_DEFAULT_MAX_TOKENS: Release = (25, 8)  # --default-max-tokens (#8226)
FIRST_RELEASE_WITH_EXPLICIT_CONTROL: Release = (
    26,
    4,
)  # --model-control-mode, --load-model, /v1/models/{m}/load (#8682)

_TAG_RELEASE = re.compile(r"(?:^|:)(\d{2})\.(\d{2})-vllm-python-py3$")


def image_release(image: str) -> Release | None:
    """(yy, mm) for a Triton vLLM image reference (`nvcr.io/nvidia/tritonserver:26.07-vllm-python-py3`
    or `26.07-vllm-python-py3`); None for a tag that does not name a release."""
    match = _TAG_RELEASE.search(image)
    return (int(match.group(1)), int(match.group(2))) if match else None


@dataclass(frozen=True)
class FrontendFeatures:
    """What the frontend in one image release can do."""

    release: Release

    @property
    def chat_template_flag(self) -> bool:
        return self.release >= FIRST_RELEASE_WITH_CHAT_TEMPLATE_FLAG

    @property
    def stream_usage(self) -> bool:
        return self.release >= FIRST_RELEASE_WITH_STREAM_USAGE

    @property
    def default_max_tokens_flag(self) -> bool:
        return self.release >= FIRST_RELEASE_WITH_DEFAULT_MAX_TOKENS

    @property
    def explicit_model_control(self) -> bool:
        """`--model-control-mode explicit`, `--load-model`, and loading models after start through
        `POST /v1/models/{name}/load` (the only load the frontend's model list sees)."""
        return self.release >= FIRST_RELEASE_WITH_EXPLICIT_CONTROL


def frontend_features(image: str) -> FrontendFeatures | None:
    """The frontend in `image`, or None when it has none (before 24.12) or its tag names no release."""
    release = image_release(image)
    if release is None or release < FIRST_RELEASE_WITH_FRONTEND:
        return None
    return FrontendFeatures(release)


@dataclass(frozen=True)
class FrontendArgs:
    """One frontend's command line. Paths are inside the container; ports are container ports."""

    model_repository: str
    tokenizer: str | None  # a weights folder holding tokenizer_config.json; None: no chat at all
    host: str = "0.0.0.0"
    openai_port: int = OPENAI_PORT
    kserve_http_port: int | None = None  # both None: the KServe /v2 frontends stay off
    kserve_grpc_port: int | None = None
    model_control: ModelControl = "none"
    load_models: tuple[str, ...] = ()  # explicit mode: loaded at startup
    default_max_tokens: int | None = None
    chat_template: str | None = None  # a .jinja file overriding the tokenizer's template


def frontend_command(args: FrontendArgs, features: FrontendFeatures) -> list[str]:
    """The container command that starts the frontend. Refuses a flag this image's main.py lacks
    (argparse would exit on it inside the container, where nobody reads the message)."""
    release = f"{features.release[0]:02d}.{features.release[1]:02d}"
    if (args.kserve_http_port is None) != (args.kserve_grpc_port is None):
        raise UsageError("the KServe HTTP and gRPC frontends go together", hint="give both ports or neither")
    if args.load_models and args.model_control != "explicit":
        raise UsageError("models to load at startup need explicit model control", hint="set model_control='explicit'")
    if args.model_control == "explicit" and not features.explicit_model_control:
        raise UsageError(
            f"the OpenAI frontend in image {release} cannot load models after start",
            hint="use image 26.04 or newer, or serve with model control 'none'",
        )
    if args.chat_template is not None and not features.chat_template_flag:
        raise UsageError(
            f"the OpenAI frontend in image {release} has no --chat-template", hint="use image 25.05 or newer"
        )
    if args.default_max_tokens is not None and not features.default_max_tokens_flag:
        raise UsageError(
            f"the OpenAI frontend in image {release} has no --default-max-tokens", hint="use image 25.08 or newer"
        )
    command = [FRONTEND_PYTHON, FRONTEND_MAIN, "--model-repository", args.model_repository]
    if args.tokenizer is not None:
        command += ["--tokenizer", args.tokenizer]
    command += ["--host", args.host, "--openai-port", str(args.openai_port)]
    if args.kserve_http_port is not None and args.kserve_grpc_port is not None:
        command += [
            "--enable-kserve-frontends",
            "--kserve-http-port",
            str(args.kserve_http_port),
            "--kserve-grpc-port",
            str(args.kserve_grpc_port),
        ]
    if args.model_control == "explicit":
        command += ["--model-control-mode", "explicit"]
        for name in args.load_models:
            command += ["--load-model", name]
    if args.default_max_tokens is not None:
        command += ["--default-max-tokens", str(args.default_max_tokens)]
    if args.chat_template is not None:
        command += ["--chat-template", args.chat_template]
    return command


@dataclass(frozen=True)
class ServedModel:
    """A model as the frontend plan sees it."""

    name: str
    tokenizer_dir: str  # its weights folder inside the container
    chat_fingerprint: str | None  # wizard.chat_template.ChatTemplate.fingerprint; None: no chat template


@dataclass(frozen=True)
class TokenizerGroup:
    """Models that render every conversation identically, so one tokenizer serves them all."""

    fingerprint: str | None  # None: the models without a chat template
    tokenizer: str | None  # the first member's weights folder; None for the no-template group
    models: tuple[str, ...]


def tokenizer_groups(models: Sequence[ServedModel]) -> tuple[TokenizerGroup, ...]:
    """Models grouped by chat fingerprint, in the order each group's first model appears. Models without
    a chat template form their own group with no tokenizer, so a chat request to them fails loudly
    ("Unknown tokenizer") instead of borrowing another model's template."""
    order: list[str | None] = []
    members: dict[str | None, list[ServedModel]] = {}
    for model in models:
        if model.chat_fingerprint not in members:
            order.append(model.chat_fingerprint)
            members[model.chat_fingerprint] = []
        members[model.chat_fingerprint].append(model)
    return tuple(
        TokenizerGroup(
            fingerprint=key,
            tokenizer=members[key][0].tokenizer_dir if key is not None else None,
            models=tuple(m.name for m in members[key]),
        )
        for key in order
    )


@dataclass(frozen=True)
class FrontendServer:
    """One frontend process: its tokenizer, the models it loads, and its OpenAI port offset."""

    index: int  # 0 is the main server (OpenAI port, KServe ports); server i listens on OpenAI port + i
    tokenizer: str | None
    models: tuple[str, ...]
    model_control: ModelControl


@dataclass(frozen=True)
class FrontendPlan:
    servers: tuple[FrontendServer, ...]
    chat: dict[str, ChatStatus]  # per model: its own template at /v1/chat/completions, or completions only
    note: str | None  # one line for `up`/`status` when some model cannot chat, saying why and what helps

    def server_of(self, model: str) -> FrontendServer:
        for server in self.servers:
            if model in server.models:
                return server
        raise KeyError(model)


def plan_frontends(models: Sequence[ServedModel], features: FrontendFeatures) -> FrontendPlan:
    """Which frontend serves which model, so that every model at /v1/chat/completions uses its own
    chat template or is marked completions-only.

    r26.04+: one frontend per tokenizer group, each in explicit mode loading only its own models from
    the shared repository. Older images load every model of the repository at startup into one
    frontend: the first group's tokenizer serves chat, everyone else is completions-only."""
    groups = tokenizer_groups(models)
    if not groups:
        return FrontendPlan(servers=(), chat={}, note=None)
    chat: dict[str, ChatStatus] = {}
    if features.explicit_model_control:
        servers = tuple(
            FrontendServer(index=i, tokenizer=g.tokenizer, models=g.models, model_control="explicit")
            for i, g in enumerate(groups)
        )
        for group in groups:
            for name in group.models:
                chat[name] = "chat" if group.fingerprint is not None else "completions-only"
        no_template = [n for g in groups if g.fingerprint is None for n in g.models]
        note = f"no chat template, completions only: {', '.join(no_template)}" if no_template else None
        return FrontendPlan(servers=servers, chat=chat, note=note)
    chat_group = next((g for g in groups if g.fingerprint is not None), None)
    every = tuple(m.name for m in models)
    for group in groups:
        for name in group.models:
            chat[name] = "chat" if group is chat_group else "completions-only"
    server = FrontendServer(
        index=0, tokenizer=chat_group.tokenizer if chat_group else None, models=every, model_control="none"
    )
    others = [name for name in every if chat[name] == "completions-only"]
    note = None
    if others:
        note = (
            f"completions only (this image's OpenAI frontend has one chat template per server): {', '.join(others)}; "
            "image 26.04 or newer gives every model its own"
        )
    return FrontendPlan(servers=(server,), chat=chat, note=note)
