"""What `modelwiz status` shows: the repository's models, their plans and state, and the server
that serves them (its container and each model's state in it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from wizard.openai_models import chat_support
from wizard.repository import RepoModel, Repository


def server_row(repository: Path) -> dict[str, Any] | None:
    """The modelwiz container serving `repository`, as JSON; None when there is none."""
    from wizard.serve import server_status

    status = server_status(repository)
    if status is None:
        return None
    return {
        "name": status.name,
        "state": status.state,
        "image": status.image,
        "url": status.url,
        "started_at": status.started_at,
        "error": status.error,
        "models": {m.name: (m.state or "UNAVAILABLE") for m in status.models} if status.state == "running" else {},
        "openai_url": status.openai_url,
        "chat_model": status.chat_model,
        "grpc": status.grpc_address,
        "metrics": status.metrics_url,
    }


def openai_rows(repo: Repository, server: Mapping[str, Any] | None) -> dict[str, dict[str, Any]]:
    """Per model: whether it chats at the server's /v1/chat/completions, and why (`"openai"`)."""
    if server is None or server["state"] != "running":
        return {}
    names = [m.name for m in repo.models()]
    if not server["openai_url"]:
        off = {"chat": False, "reason": "the server runs without the OpenAI API (/v2 only)"}
        return {name: dict(off) for name in names}
    loaded = [name for name in names if server["models"].get(name) == "READY"]
    rows = {
        m.name: m.to_json() for m in chat_support(repo.root, repo.manifest.mount_point, loaded, server["chat_model"])
    }
    for name in names:
        rows.setdefault(name, {"chat": False, "reason": "not loaded in the server: `modelwiz up` loads it"})
    return rows


def model_row(
    model: RepoModel, server: Mapping[str, str] | None = None, openai: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """One model as JSON (`modelwiz status --json`)."""
    entry = model.entry
    return {
        "name": model.name,
        "managed": model.managed,
        "state": model.state,
        "ready": model.ready,
        "source": entry.source if entry else None,
        "revision": entry.revision if entry else None,
        "weights": entry.weights if entry else None,
        "plan": entry.plan.to_json() if entry else None,
        "config": model.config_summary,
        "edited": list(model.edited),
        "waiting": list(model.waiting),
        "problems": list(model.problems),
        "server_state": (server or {}).get(model.name),
        "openai": openai,  # {"chat": bool, "reason": str} while a server runs, else None
    }


def collect_status(repo: Repository, *, with_server: bool = True) -> dict[str, Any]:
    server = server_row(repo.root) if with_server else None
    openai = openai_rows(repo, server)
    return {
        "repository": str(repo.root),
        "image": repo.manifest.image,
        "mount_point": repo.manifest.mount_point,
        "devices": list(repo.used_devices()),
        "server": server,
        "models": [model_row(m, server["models"] if server else None, openai.get(m.name)) for m in repo.models()],
    }
