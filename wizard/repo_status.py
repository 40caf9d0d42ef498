"""What `modelwiz status` shows: the repository's models, their plans and state, and the server
that serves them (its container and each model's state in it)."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

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
    }


def model_row(model: RepoModel, server: Mapping[str, str] | None = None) -> dict[str, Any]:
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
    }


def collect_status(repo: Repository, *, with_server: bool = True) -> dict[str, Any]:
    server = server_row(repo.root) if with_server else None
    return {
        "repository": str(repo.root),
        "image": repo.manifest.image,
        "mount_point": repo.manifest.mount_point,
        "devices": list(repo.used_devices()),
        "server": server,
        "models": [model_row(m, server["models"] if server else None) for m in repo.models()],
    }
