"""Find and connect to the podman service (libpod API) that runs Triton.

Order: `$CONTAINER_HOST` when set (the user chose), then the rootless socket
(`$XDG_RUNTIME_DIR/podman/podman.sock`, or `/run/user/<uid>/podman/podman.sock`), then the rootful
one (`/run/podman/podman.sock`). When none answers, the error says exactly how to start one.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from wizard.errors import ModelwizError

ROOTFUL_SOCKET = Path("/run/podman/podman.sock")
START_ROOTLESS = "systemctl --user enable --now podman.socket"
START_ROOTFUL = "sudo systemctl enable --now podman.socket"


@dataclass(frozen=True)
class SocketCandidate:
    url: str  # what PodmanClient(base_url=...) takes
    source: str  # "CONTAINER_HOST", "rootless" or "rootful"


def socket_candidates(env: Mapping[str, str] | None = None, *, uid: int | None = None) -> tuple[SocketCandidate, ...]:
    """Where to look, in order. `$CONTAINER_HOST` alone when it is set: the user chose it."""
    env = os.environ if env is None else env
    host = env.get("CONTAINER_HOST")
    if host:
        return (SocketCandidate(host, "CONTAINER_HOST"),)
    uid = os.getuid() if uid is None else uid
    runtime = env.get("XDG_RUNTIME_DIR") or f"/run/user/{uid}"
    rootless = SocketCandidate(f"unix://{runtime}/podman/podman.sock", "rootless")
    rootful = SocketCandidate(f"unix://{ROOTFUL_SOCKET}", "rootful")
    return (rootless, rootful)


def _unix_path(url: str) -> Path | None:
    for prefix in ("unix://", "http+unix://"):
        if url.startswith(prefix):
            return Path(url[len(prefix) :])
    return None


def _how_to_start(candidates: tuple[SocketCandidate, ...]) -> str:
    if candidates and candidates[0].source == "CONTAINER_HOST":
        return (
            f"start the service CONTAINER_HOST points at ({candidates[0].url}), e.g. "
            f"`podman system service --time=0 {candidates[0].url} &`, or unset CONTAINER_HOST"
        )
    return f"start it with `{START_ROOTLESS}` (or for rootful podman: `{START_ROOTFUL}`)"


def connect(env: Mapping[str, str] | None = None, *, timeout: int = 60) -> Any:
    """A `podman.PodmanClient` that answered a ping. Raises ModelwizError with the fix otherwise."""
    from podman import PodmanClient

    candidates = socket_candidates(env)
    tried: list[str] = []
    for candidate in candidates:
        path = _unix_path(candidate.url)
        if path is not None and not path.exists():
            tried.append(f"{candidate.url} (no socket)")
            continue
        client = PodmanClient(base_url=candidate.url, timeout=timeout)
        try:
            if client.ping():
                return client
            tried.append(f"{candidate.url} (no answer)")
        except Exception as error:  # noqa: BLE001 - podman-py raises several connection error classes
            tried.append(f"{candidate.url} ({type(error).__name__})")
        client.close()
    raise ModelwizError(
        "cannot reach the podman service: tried " + ", ".join(tried),
        hint=_how_to_start(candidates),
    )


def is_rootless(client: Any) -> bool:
    """Whether the service runs rootless (then ulimits above the user's own are refused)."""
    try:
        return bool(client.info()["host"]["security"]["rootless"])
    except (KeyError, TypeError):
        return os.getuid() != 0


def selinux_enabled(client: Any) -> bool:
    """SELinux as the podman service sees it (the host that runs the container)."""
    try:
        return bool(client.info()["host"]["security"]["selinuxEnabled"])
    except (KeyError, TypeError):
        return False
