"""From a model repository to a serving Triton: the one path `up`, `add`, `status` and the wizard share.

`start_server` reads what the repository asks for (read_launch_inputs), picks the image for this
driver, builds the LaunchSpec, connects to podman and runs `launcher.up`. `server_status`
is the running server's view of each model, for `status`.
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from wizard.container import LaunchSpec
from wizard.errors import ModelwizError, UsageError
from wizard.fsutil import atomic_write_text
from wizard.gpus import GpuInventory, load_inventory
from wizard.image_switch import prepare_for_image
from wizard.launch_inputs import LaunchInputs, read_launch_inputs
from wizard.openai_models import chat_support
from wizard.paths import cache_dir
from wizard.progress import ProgressCallback, ignore_progress
from wizard.serve_options import DEFAULTS, ServeOptions, running_options

__all__ = ["DEFAULTS", "ServeOptions", "Serving", "running_options", "start_server"]

if TYPE_CHECKING:
    from wizard.launcher import LaunchEvent, LaunchStatus, UpResult


@dataclass(frozen=True)
class Serving:
    spec: LaunchSpec
    result: UpResult


def _ignore_event(event: LaunchEvent) -> None:
    return None


def _refuse(question: str) -> bool:
    return False


@dataclass(frozen=True)
class Reporter:
    """The callbacks a launch reports through and listens to, carried as one."""

    on_event: Callable[[LaunchEvent], None] = _ignore_event  # each step (preflight, image, load, ...)
    on_progress: ProgressCallback = ignore_progress  # bytes of an image pull
    on_log: Callable[[str], None] | None = None  # the server's log lines; None: not followed
    confirm: Callable[[str], bool] = _refuse  # a change that needs a restart is put to it first
    cancel: threading.Event | None = None  # set: stop as soon as possible


def driver_version(gpus_spec: str | None, on_note: Callable[[str], None]) -> str | None:
    """The host's NVIDIA driver version; None for described GPUs or when NVML cannot say."""
    try:
        return load_inventory(gpus_spec).driver_version
    except ModelwizError as error:
        on_note(f"cannot read the NVIDIA driver version ({error.message}); not checking it against the image")
        return None


def start_server(
    repository: Path,
    *,
    driver: str | None,
    options: ServeOptions = ServeOptions(),
    reporter: Reporter = Reporter(),
    reload: Sequence[str] = (),
    inputs: LaunchInputs | None = None,
) -> Serving:
    """Start Triton for the repository (or make the running one load what is new; `reload`
    names models whose budgets changed, which a running server loads again).

    `driver`: the host's NVIDIA driver version, checked against the image (None: not checked).
    `inputs`: what the repository asks for, when the caller has read it already."""
    from wizard import launcher, podman_conn
    from wizard.launch_inputs import HostFacts, build_launch_spec
    from wizard.measured import CATCH_UP_LINES, caught_up, record_measurements
    from wizard.vllm_log import ModelLoadLog

    changes = prepare_for_image(repository, options.image)  # model.json follows the image's vLLM
    for text in changes:
        reporter.on_event(launcher.LaunchEvent("image", text))
    if inputs is None or changes:
        inputs = read_launch_inputs(repository)
    if not inputs.models:
        raise UsageError(
            f"no model in {repository} is ready to serve",
            hint="add one with `modelwiz add MODEL` (a model still downloading is never loaded)",
        )
    on_event = reporter.on_event
    client = podman_conn.connect()
    try:
        spec = build_launch_spec(inputs, options, HostFacts.from_podman(client, repository, driver))
        fingerprints = {name: model_fingerprint(repository, name) for name in spec.models}
        existing = launcher.find_container(client, spec.name)
        before = loaded_record(spec.name, existing.id if existing else None)
        changed = {name for name, fp in fingerprints.items() if name in before and before[name] != fp}
        loaded_now: dict[str, str] = {}
        load_log = ModelLoadLog()  # what vLLM measured as each model loaded

        def watch(event: LaunchEvent) -> None:
            # A model loaded by this run (not one found ready) is serving these files now.
            if event.stage == "ready" and event.model and event.seconds is not None:
                loaded_now[event.model] = fingerprints[event.model]
            on_event(event)

        try:
            result = launcher.up(
                spec,
                client,
                driver_version=driver,
                on_event=watch,
                on_progress=reporter.on_progress,
                on_log=reporter.on_log,
                observe_log=load_log.line,
                confirm=reporter.confirm,
                reload=sorted(set(reload) | changed),
                cancel=reporter.cancel,
                live_timeout_s=options.live_timeout_s,
            )
        finally:
            # Also after a failure or a cancel: what did load is serving, and a later `up` must
            # know which files it serves. Models found ready keep what was recorded for them.
            container = launcher.find_container(client, spec.name)
            if container is not None:
                same = existing is not None and existing.id == container.id
                record_loaded(spec.name, container.id, {**(before if same else {}), **loaded_now})
                reports = caught_up(
                    load_log.reports(), loaded_now, lambda: launcher.log_tail(container, CATCH_UP_LINES)
                )
                for note in record_measurements(repository, reports, loaded_now):
                    on_event(launcher.LaunchEvent("warning", note))
    finally:
        client.close()
    return Serving(spec, result)


# -- what the server has loaded ----------------------------------------------------------------
# A running server keeps the files it loaded. Each `up` records a fingerprint of every model's
# config.pbtxt and model.json as loaded; a later `up` reloads the models whose files changed since
# (a re-plan after `add --no-launch`, a hand edit), so no engine keeps an outdated budget.


def model_fingerprint(repository: Path, name: str) -> str:
    digest = hashlib.sha256()
    for rel in ("config.pbtxt", "1/model.json"):
        path = Path(repository) / name / rel
        digest.update(rel.encode() + b"\0" + (path.read_bytes() if path.is_file() else b"") + b"\0")
    return digest.hexdigest()


def _loaded_file(container_name: str) -> Path:
    return cache_dir() / "served" / f"{container_name}.json"


def loaded_record(container_name: str, container_id: str | None) -> dict[str, str]:
    """The fingerprints of the files this container loaded, by model (empty when unknown)."""
    try:
        state = json.loads(_loaded_file(container_name).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not container_id or state.get("container_id") != container_id:
        return {}
    return dict(state.get("models") or {})


def record_loaded(container_name: str, container_id: str, fingerprints: dict[str, str]) -> None:
    path = _loaded_file(container_name)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, json.dumps({"container_id": container_id, "models": fingerprints}, indent=2) + "\n")


def server_status(repository: Path) -> LaunchStatus | None:
    """The modelwiz server for `repository` (container state, URL, each model's state); None when
    podman is not reachable or no such container exists."""
    from wizard import launcher, podman_conn

    try:
        client = podman_conn.connect(timeout=5)
    except ModelwizError:
        return None
    try:
        running = running_options(client, repository)
        return None if running is None or running.name is None else launcher.status(client, running.name)
    finally:
        client.close()


def completions_only(repository: Path, status: LaunchStatus, models: Sequence[str]) -> tuple[str, ...]:
    """Which of `models` the server's OpenAI frontend serves at /v1/completions only (their chat
    template is not the frontend's: wizard.openai_models)."""
    if not status.openai_url or not status.mount_point:
        return ()
    # The frontend holds its model's tokenizer whether that model is loaded now or not.
    compared = [*models, *([status.chat_model] if status.chat_model and status.chat_model not in models else [])]
    support = chat_support(repository, status.mount_point, compared, status.chat_model)
    return tuple(m.name for m in support if not m.chat and m.name in models)


def models_holding_gpu_memory(repository: Path, inventory: GpuInventory) -> frozenset[str]:
    """The repository's models that hold GPU memory right now (loaded, loading or unloading in
    its server), so NVML's free memory already lacks them and the planner must not count them
    twice. Never any for described GPUs."""
    if inventory.source != "nvml" or not Path(repository).is_dir():
        return frozenset()
    status = server_status(repository)
    if not status or status.state != "running":
        return frozenset()
    return frozenset(m.name for m in status.models if m.state in ("READY", "LOADING", "UNLOADING"))
