"""What `modelwiz status` shows: the repository's models, their plans and state.

`server_states` is the seam for the launcher part: it returns each model's state in the running
server (READY, LOADING, UNAVAILABLE, ...) or None when no server is known.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

from wizard.repository import Repository, RepoModel


def server_states(repository: Path) -> Mapping[str, str] | None:
    """The running server's view of each model, by name; None when no server serves `repository`."""
    from wizard.serve import server_model_states

    return server_model_states(repository)


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
    server = server_states(repo.root) if with_server else None
    return {
        "repository": str(repo.root),
        "image": repo.manifest.image,
        "mount_point": repo.manifest.mount_point,
        "devices": list(repo.used_devices()),
        "models": [model_row(m, server) for m in repo.models()],
    }
