"""Which models chat at /v1/chat/completions on one OpenAI frontend, read from the repository's files.

Triton's OpenAI frontend holds one tokenizer for every model it serves ("One tokenizer is shared
for all loaded models", triton-inference-server/server `python/openai/openai_frontend/engine/
triton_engine.py` `_get_model_metadata`), and that tokenizer's chat template renders every chat
request. modelwiz runs one frontend per container and gives it the weights folder of the first
model (in load order) that has a chat template. A model chats there exactly when its own template
renders conversations identically (`ChatTemplate.fingerprint`: same template text and special
tokens); every other model is served at /v1/completions only, and `status` says why.

The tokenizer files are read from the model's weights folder in the repository (the folder its
1/model.json loads), never from the Hub.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.chat_template import ChatTemplate, load_chat_template
from wizard.errors import ModelwizError
from wizard.model_config import MODEL_JSON
from wizard.openai_frontend import ServedModel, tokenizer_groups

ONE_TOKENIZER = "the OpenAI frontend has one chat template per server"


@dataclass(frozen=True)
class ModelChat:
    """Whether one model chats at /v1/chat/completions, and why (one line)."""

    name: str
    chat: bool
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {"chat": self.chat, "reason": self.reason}


@dataclass(frozen=True)
class ChatServer:
    """The frontend's tokenizer (a container path) and what it means for each model."""

    tokenizer: str | None
    chat_model: str | None
    models: tuple[ModelChat, ...]

    @property
    def completions_only(self) -> tuple[ModelChat, ...]:
        return tuple(m for m in self.models if not m.chat)


@dataclass(frozen=True)
class _Weights:
    name: str
    container_path: str | None  # what 1/model.json loads
    host_path: Path | None  # the same folder on this host, when it is inside the repository
    template: ChatTemplate | None
    problem: str | None  # why there is no template to compare (unreadable files, weights elsewhere)


def _weights(root: Path, mount_point: str, name: str) -> _Weights:
    try:
        loads = json.loads((root / name / MODEL_JSON).read_text(encoding="utf-8")).get("model")
    except (OSError, ValueError, AttributeError):
        return _Weights(name, None, None, None, f"its {MODEL_JSON} cannot be read")
    mount = mount_point.rstrip("/") + "/"
    if not isinstance(loads, str) or not loads.startswith(mount):
        return _Weights(name, None, None, None, "its weights are not a folder in the repository")
    host = root / loads[len(mount) :]
    try:
        template = load_chat_template(host)
    except ModelwizError as error:
        return _Weights(name, loads, host, None, f"its tokenizer files cannot be read ({error.message})")
    return _Weights(name, loads, host, template, None)


def weights_folder(root: Path, mount_point: str, name: str) -> Path | None:
    """The model's weights folder on this host (what its 1/model.json loads), when it is in the repository."""
    return _weights(root, mount_point, name).host_path


def _no_template(found: _Weights) -> str:
    return found.problem or "its tokenizer files have no chat template (a base model): use /v1/completions"


def chat_server(root: Path, mount_point: str, models: Sequence[str], *, keep: str | None = None) -> ChatServer:
    """The tokenizer a frontend serving `models` (in load order) gets: `keep`'s (the running server's
    choice) while it is served and has a template, else the first model with a chat template; and
    which models chat with it."""
    found = [_weights(root, mount_point, name) for name in models]
    kept = next((f for f in found if f.name == keep and f.template is not None), None)
    if kept is not None:
        found = [kept, *(f for f in found if f is not kept)]
    served = [
        ServedModel(
            name=f.name,
            tokenizer_dir=f.container_path or "",
            chat_fingerprint=f.template.fingerprint if f.template else None,
        )
        for f in found
    ]
    group = next((g for g in tokenizer_groups(served) if g.fingerprint is not None), None)
    chat_model = group.models[0] if group else None
    return ChatServer(
        tokenizer=group.tokenizer if group else None,
        chat_model=chat_model,
        models=_support(sorted(found, key=lambda f: list(models).index(f.name)), chat_model),
    )


def chat_support(root: Path, mount_point: str, models: Sequence[str], chat_model: str | None) -> tuple[ModelChat, ...]:
    """What a running frontend whose tokenizer is `chat_model`'s means for each of `models`."""
    return _support([_weights(root, mount_point, name) for name in models], chat_model)


def _support(found: Sequence[_Weights], chat_model: str | None) -> tuple[ModelChat, ...]:
    by_name = {f.name: f for f in found}
    server = by_name.get(chat_model) if chat_model else None  # None: no tokenizer to compare with
    rows = []
    for f in found:
        if f.template is None:
            rows.append(ModelChat(f.name, False, _no_template(f)))
        elif server is None or server.template is None:
            rows.append(ModelChat(f.name, False, f"the server chats with no tokenizer ({ONE_TOKENIZER}): restart it"))
        elif f.name == server.name:
            rows.append(ModelChat(f.name, True, "its own chat template (the server's tokenizer is its weights folder)"))
        elif f.template.fingerprint == server.template.fingerprint:
            rows.append(
                ModelChat(
                    f.name,
                    True,
                    f"its own chat template (identical to {server.name}'s, whose tokenizer the server uses)",
                )
            )
        else:
            rows.append(
                ModelChat(
                    f.name,
                    False,
                    f"its chat template differs from {server.name}'s and {ONE_TOKENIZER}: "
                    f"use /v1/completions, or `modelwiz chat {f.name}` (applies its template over /v2)",
                )
            )
    return tuple(rows)
