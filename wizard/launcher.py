"""Start Triton in podman and wait until every model is ready; stop it; report its state.

`up()` runs: preflight -> image present or pulled -> create/start (or reuse the running
container) -> wait for /v2/health/live -> load the models ONE AT A TIME (vLLM engines that start
together on one GPU miscount each other's memory) -> check each is ready. It reports through
callbacks (plain dataclasses), never prints. On failure it raises `LaunchFailed` carrying the
container's last log lines and advice for the vLLM/Triton errors it recognises.
"""

from __future__ import annotations

import contextlib
import re
import resource
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from wizard.container import (
    LABEL_IMAGE,
    LABEL_MANAGED,
    LABEL_MOUNT,
    LABEL_OPENAI,
    LABEL_PORTS,
    LABEL_REPOSITORY,
    NO_OPENAI,
    LaunchSpec,
    Ulimit,
    create_kwargs,
    parse_openai_label,
    parse_ports_label,
    recreate_reasons,
)
from wizard.errors import Cancelled, ModelwizError
from wizard.openai_client import OpenAIClient
from wizard.preflight import CDI_DIRS, check_all, raise_for
from wizard.progress import ProgressCallback, ignore_progress
from wizard.pull import ensure_image
from wizard.triton_http import ModelState, TritonHttp, TritonHttpError

LOG_TAIL_LINES = 40


# -- events -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LaunchEvent:
    """One step of `up`. stage: preflight, image, container, live, load, ready, unload, warning."""

    stage: str
    message: str
    model: str | None = None
    seconds: float | None = None


EventCallback = Callable[[LaunchEvent], None]
LogCallback = Callable[[str], None]
ConfirmCallback = Callable[[str], bool]


def _ignore(_: Any) -> None:
    return None


def _refuse(_: str) -> bool:
    return False


@dataclass(frozen=True)
class UpResult:
    name: str
    container_id: str
    url: str
    reused: bool  # the running container was kept (no restart)
    loaded: tuple[str, ...]  # models loaded by this run
    already_ready: tuple[str, ...]  # models that were ready before
    unloaded: tuple[str, ...] = ()  # ready models the repository no longer lists


class LaunchFailed(ModelwizError):
    """Triton did not come up or a model did not load. Carries the evidence and the advice."""

    def __init__(
        self,
        message: str,
        *,
        log_tail: Iterable[str] = (),
        advice: Iterable[str] = (),
        model: str | None = None,
    ) -> None:
        advice = tuple(advice)
        super().__init__(message, hint=advice[0] if advice else "the log lines above show why")
        self.log_tail = tuple(log_tail)
        self.advice = advice
        self.model = model


# -- known errors -> advice (memory-planning.md §1.4, triton-vllm-backend.md) ----------------------

_ADVICE: tuple[tuple[str, str], ...] = (
    (
        r"Free memory on device .* less than desired GPU memory utilization",
        "another process holds GPU memory, or gpu_memory_utilization is more than is free: stop "
        "the other process or lower gpu_memory_utilization (re-plan with `modelwiz plan`)",
    ),
    (
        r"No available memory for the cache blocks",
        "the plan's overhead was too low: raise gpu_memory_utilization or shorten max_model_len",
    ),
    (
        r"estimated maximum model length is (\d+)",
        "the KV cache cannot hold one full-length request: set max_model_len to {n} or less, or "
        "raise gpu_memory_utilization",
    ),
    (
        r"larger than the maximum number of tokens that can be stored in KV cache",
        "the KV cache cannot hold one full-length request: shorten max_model_len or raise gpu_memory_utilization",
    ),
    (
        r"must be divisible by tensor parallel size",
        "tensor_parallel_size must divide the model's attention heads: pick another GPU count",
    ),
    (
        r"User-specified max_model_len \(\d+\) is greater than the derived max_model_len",
        "max_model_len is longer than the model supports: lower it to the model's limit",
    ),
    (
        r"Error in memory profiling",
        "GPU memory changed while vLLM measured it (another process started or stopped): make "
        "sure nothing else starts on these GPUs and run `modelwiz up` again",
    ),
    (
        r"CUDA out of memory|OutOfMemoryError",
        "the GPU ran out of memory (often while capturing CUDA graphs): lower "
        "gpu_memory_utilization by 0.02-0.03 or set enforce_eager",
    ),
    (
        r"'model\.json' containing vllm engine args must be provided",
        "the model folder has no 1/model.json: add the model again with `modelwiz add`",
    ),
    (
        r"failed to poll from model repository|Could not find config|failed to open text file for read",
        "the model folder or its config.pbtxt is missing from the mounted repository: check "
        "`modelwiz status` and add the model again with `modelwiz add`",
    ),
    (
        r"unresolvable CDI devices",
        "podman cannot find the GPU in the CDI spec: run `sudo nvidia-ctk cdi generate "
        "--output=/var/run/cdi/nvidia.yaml`",
    ),
    (
        r"(?i)permission denied.*(/models|model_repository|model-repository)",
        "the container cannot read the repository: on SELinux hosts relabel it or run with "
        "label=disable; check the folder's permissions",
    ),
    (
        r"(?i)(401|403).*(huggingface|hf\.co)|gated repo|Access to model .* is restricted",
        "the model is gated or private: download it with `modelwiz download` (uses your stored "
        "token) so the container reads local files",
    ),
)


def advise(lines: Iterable[str]) -> list[str]:
    """Advice for every known error found in `lines`, in table order, without repeats."""
    text = "\n".join(lines)
    found: list[str] = []
    for pattern, advice in _ADVICE:
        match = re.search(pattern, text)
        if not match:
            continue
        if "{n}" in advice:
            advice = advice.format(n=max(1024, int(match.group(1)) // 1024 * 1024))
        if advice not in found:
            found.append(advice)
    return found


# -- logs ---------------------------------------------------------------------------------------


class LogFollower:
    """Follows a container's log in a thread, line by line, until `stop()` or the container ends."""

    def __init__(self, container: Any, on_line: LogCallback, *, since: int | None = None) -> None:
        self._container = container
        self._on_line = on_line
        self._since = since
        self._response: Any = None
        self._stopped = threading.Event()
        self._thread = threading.Thread(target=self._run, name="modelwiz-logs", daemon=True)

    def start(self) -> LogFollower:
        self._thread.start()
        return self

    def _run(self) -> None:
        from podman.api import stream_frames

        params: dict[str, Any] = {"follow": True, "stdout": True, "stderr": True}
        if self._since is not None:
            params["since"] = self._since
        pending = b""
        try:
            self._response = self._container.client.get(
                f"/containers/{self._container.id}/logs", params=params, stream=True
            )
            for frame in stream_frames(self._response):
                if self._stopped.is_set():
                    break
                pending += frame if isinstance(frame, bytes) else b"".join(frame)
                *lines, pending = pending.split(b"\n")
                for line in lines:
                    self._on_line(line.decode("utf-8", errors="replace").rstrip("\r"))
            if pending and not self._stopped.is_set():
                self._on_line(pending.decode("utf-8", errors="replace"))
        except Exception:  # noqa: BLE001 - the stream ends with the container, or when stop() closes it
            return

    def stop(self, timeout_s: float = 2.0) -> None:
        self._stopped.set()
        response = self._response
        if response is not None:
            # The thread is blocked reading a quiet log. Closing the response would wait for that
            # read (the buffered reader's lock) until a line comes or podman's 60 s read timeout
            # ends it; shutting the socket down first ends the read now (urllib3's
            # HTTPResponse.shutdown, made for this).
            with contextlib.suppress(Exception):
                response.raw.shutdown()
            with contextlib.suppress(Exception):
                response.close()
        self._thread.join(timeout_s)


def log_tail(container: Any, lines: int = LOG_TAIL_LINES) -> list[str]:
    try:
        chunks = container.logs(stdout=True, stderr=True, tail=lines)
        text = b"".join(chunks).decode("utf-8", errors="replace")
    except Exception:  # noqa: BLE001 - the log is evidence only; a podman-py error must not hide the failure
        return []
    return text.splitlines()[-lines:]


# -- podman helpers -----------------------------------------------------------------------------


def find_container(client: Any, name: str) -> Any | None:
    from podman.errors import NotFound

    try:
        return client.containers.get(name)
    except NotFound:
        return None


def _labels(container: Any) -> dict[str, str]:
    return dict(container.attrs.get("Config", {}).get("Labels") or container.labels or {})


def _started_at(container: Any) -> str:
    return str(container.attrs.get("State", {}).get("StartedAt", ""))


def _remove(container: Any, timeout_s: int = 30) -> None:
    from podman.errors import NotFound

    try:
        container.stop(timeout=timeout_s)
    except NotFound:
        return
    except Exception:  # noqa: BLE001 - not running: remove anyway
        pass
    with contextlib.suppress(NotFound):
        container.remove(force=True)


# runc: "error setting rlimit type 7: operation not permitted"; crun: "setrlimit `RLIMIT_NOFILE`:
# Operation not permitted". The type is the kernel's RLIMIT_* number.
_RLIMIT_REFUSED = re.compile(
    r"rlimit type (\d+): operation not permitted|setrlimit\W+RLIMIT_([A-Z]+)\W+operation not permitted", re.I
)
_RLIMIT_NAMES = {
    resource.RLIMIT_NOFILE: "nofile",
    resource.RLIMIT_NPROC: "nproc",
    resource.RLIMIT_MEMLOCK: "memlock",
    resource.RLIMIT_STACK: "stack",
}


def _refused_rlimit(text: str) -> str | None:
    """The ulimit (podman's name: nofile, memlock, ...) the runtime was refused, if any."""
    match = _RLIMIT_REFUSED.search(text)
    if not match:
        return None
    if match.group(1) is not None:
        number = int(match.group(1))
        return _RLIMIT_NAMES.get(number, f"rlimit {number}")
    return match.group(2).lower()


def _rlimit_failure(spec: LaunchSpec, name: str, log: Iterable[str] = ()) -> LaunchFailed:
    """A one-line explanation of the ulimit `name` the host refused."""
    asked = next((u for u in spec.ulimits if u.name == name), None)
    value = f"{asked.soft}:{asked.hard}" if asked else "podman's default"
    return LaunchFailed(
        f"the host refused the container's {name} limit ({value}): the podman service may not raise it",
        log_tail=log,
        advice=[
            f"the podman service runs with a lower hard {name} limit than this shell: raise it "
            "(LimitNOFILE=/LimitNPROC= in its systemd unit) or restart the service from this shell",
        ],
    )


# Lower nofile/nproc values tried when the podman service refuses the one asked for (its own
# hard limit can be below this process's: podman's service ran with nproc 32768 where the shell
# that started it had 96365).
LOWER_LIMITS = (65536, 32768, 16384, 8192, 4096, 1024)


def _probe_refusal(client: Any, spec: LaunchSpec) -> str | None:
    """Start a throw-away container (no ports, no GPUs) with the spec's ulimits: None when podman
    grants them, else the name of the one the runtime refused (other failures raise).

    Rootful podman without CAP_SYS_RESOURCE (nested containers, some VMs) refuses memlock, and a
    service with lower hard limits than this process refuses nofile/nproc; trying them on the
    real container instead leaks its published ports for a while in podman 4.3.
    """
    from podman.errors import APIError

    probe = client.containers.create(
        spec.image,
        command=["true"],
        entrypoint=[],
        ulimits=create_kwargs(spec)["ulimits"],
        labels={LABEL_MANAGED: "probe"},
    )
    try:
        probe.start()
        probe.wait()
        return None
    except APIError as error:
        refused = _refused_rlimit(getattr(error, "explanation", None) or str(error))
        if refused is None:
            raise
        return refused
    finally:
        with contextlib.suppress(Exception):
            probe.remove(force=True)


def _lowered(spec: LaunchSpec, name: str) -> LaunchSpec | None:
    """The spec asking for the next lower value of ulimit `name`; None when there is none."""
    limit = next((u for u in spec.ulimits if u.name == name), None)
    if limit is None or name not in ("nofile", "nproc"):
        return None
    lower = next((n for n in LOWER_LIMITS if n < limit.hard), None)
    if lower is None:
        return None
    ulimits = tuple(Ulimit(u.name, lower, lower) if u.name == name else u for u in spec.ulimits)
    return replace(spec, ulimits=ulimits)


def _granted_ulimits(client: Any, spec: LaunchSpec, on_event: EventCallback) -> LaunchSpec:
    """The spec with ulimits this host's podman grants: without memlock where it may not raise
    it, with nofile/nproc lowered where its hard limits are lower; a refusal of anything else is
    explained in one line."""
    while (refused := _probe_refusal(client, spec)) is not None:
        if refused == "memlock" and any(u.name == "memlock" for u in spec.ulimits):
            on_event(LaunchEvent("warning", "podman may not raise the memlock limit here; starting without it"))
            spec = spec.without_ulimit("memlock")
            continue
        lower = _lowered(spec, refused)
        if lower is None:
            raise _rlimit_failure(spec, refused)
        value = next(u.hard for u in lower.ulimits if u.name == refused)
        on_event(LaunchEvent("warning", f"podman may not raise the {refused} limit this high here; asking for {value}"))
        spec = lower
    return spec


def _create_and_start(client: Any, spec: LaunchSpec, on_event: EventCallback) -> tuple[Any, LaunchSpec]:
    from podman.errors import APIError

    spec = _granted_ulimits(client, spec, on_event)
    container = client.containers.create(**create_kwargs(spec))
    try:
        container.start()
        return container, spec
    except APIError as error:
        log = log_tail(container)
        _remove(container)
        detail = getattr(error, "explanation", None) or str(error)
        refused = _refused_rlimit(detail)
        if refused is not None:
            raise _rlimit_failure(spec, refused, log) from error
        raise LaunchFailed(
            f"podman could not start {spec.name}: {detail}", log_tail=log, advice=advise([detail, *log])
        ) from error


# -- up -----------------------------------------------------------------------------------------


def _stopper(cancel: threading.Event | None) -> Callable[[], None]:
    def stop() -> None:
        if cancel is not None and cancel.is_set():
            raise Cancelled(
                "launch stopped; the server keeps running with what it has loaded",
                hint="`modelwiz up` carries on, `modelwiz down` stops it",
            )

    return stop


def _wait_live(
    container: Any, http: TritonHttp, *, timeout_s: float, poll_s: float, stop: Callable[[], None] = lambda: None
) -> None:
    deadline = time.monotonic() + timeout_s
    while True:
        stop()
        if http.live():
            return
        container.reload()
        if container.status not in ("running", "created", "configured", "initialized"):
            code = container.attrs.get("State", {}).get("ExitCode")
            lines = log_tail(container)
            raise LaunchFailed(
                f"Triton exited (status {container.status}, exit code {code}) before it was live",
                log_tail=lines,
                advice=advise(lines),
            )
        if time.monotonic() > deadline:
            lines = log_tail(container)
            raise LaunchFailed(
                f"Triton was not live at {http.base_url} after {timeout_s:.0f} s",
                log_tail=lines,
                advice=advise(lines) or ["see the log lines above; a large image can take long to start"],
            )
        time.sleep(poll_s)


class _Models:
    """Loads and unloads models where the server's model list sees them: Triton's repository API,
    or, behind the OpenAI frontend, its own `/v1/models/{name}/load` (a load through /v2 would not
    appear in /v1/models: `TritonLLMEngine.load_model` is what adds it, engine/triton_engine.py)."""

    def __init__(self, spec: LaunchSpec, http: TritonHttp) -> None:
        self.http = http
        self.openai = OpenAIClient(spec.openai_url) if spec.openai_url else None

    def load(self, name: str, *, timeout_s: float) -> None:
        if self.openai is None:
            self.http.load(name, timeout_s=timeout_s)
            return
        try:
            self.openai.load(name, timeout_s=timeout_s)
        except ModelwizError as error:
            raise TritonHttpError(error.message) from error

    def unload(self, name: str) -> None:
        if self.openai is None:
            self.http.unload(name)
            return
        try:
            self.openai.unload(name)
        except ModelwizError as error:
            raise TritonHttpError(error.message) from error


def _load_one(container: Any, http: TritonHttp, models: _Models, name: str, *, timeout_s: float) -> None:
    try:
        models.load(name, timeout_s=timeout_s)
    except TritonHttpError as error:
        time.sleep(0.2)  # let the server's own error line reach the log
        lines = log_tail(container)
        raise LaunchFailed(
            f"model {name} failed to load: {error}",
            log_tail=lines,
            advice=advise([str(error), *lines]),
            model=name,
        ) from error
    if not http.model_ready(name):
        lines = log_tail(container)
        raise LaunchFailed(
            f"model {name} loaded but is not ready",
            log_tail=lines,
            advice=advise(lines),
            model=name,
        )


def up(
    spec: LaunchSpec,
    client: Any,
    *,
    driver_version: str | None = None,
    cdi_dirs: Iterable[Path] = CDI_DIRS,
    on_event: EventCallback = _ignore,
    on_progress: ProgressCallback = ignore_progress,
    on_log: LogCallback | None = None,
    observe_log: LogCallback | None = None,
    confirm: ConfirmCallback = _refuse,
    reload: Iterable[str] = (),
    cancel: threading.Event | None = None,
    live_timeout_s: float = 900.0,
    load_timeout_s: float = 3600.0,
    poll_s: float = 0.5,
) -> UpResult:
    """Bring Triton up as `spec` describes and load its models; see the module docstring.

    `observe_log`: also called with each log line (the log is followed when either is given).
    `reload`: models whose files changed (a re-plan gave them another budget). A running server
    unloads them first and loads them again in turn, so no engine keeps an outdated budget.
    `cancel`: checked between steps and while waiting (a model load under way finishes first);
    the server keeps running, with what it has loaded.
    """
    stop = _stopper(cancel)
    existing = find_container(client, spec.name)
    reuse = False
    if existing is not None:
        labels = _labels(existing)
        if labels.get(LABEL_MANAGED) != "true":
            raise ModelwizError(
                f"a container named {spec.name} exists and modelwiz did not create it",
                hint="pass --name with another name, or remove that container yourself",
            )
        reasons = recreate_reasons(spec, labels)
        if existing.status == "running" and not reasons:
            reuse = True
        elif existing.status == "running":
            question = f"{spec.name} is running with other settings ({'; '.join(reasons)}); recreate it?"
            if not confirm(question):
                raise ModelwizError(
                    f"{spec.name} is running with other settings ({'; '.join(reasons)})",
                    hint="confirm the restart (--yes), or `modelwiz down` first",
                )
            on_event(LaunchEvent("container", f"removing {spec.name} to recreate it"))
            _remove(existing)
        else:
            _remove(existing)  # stopped or exited: nothing to keep

    on_event(LaunchEvent("preflight", "checking CDI devices, driver, ports"))
    raise_for(check_all(spec, driver_version=driver_version, cdi_dirs=cdi_dirs, ports=not reuse))
    if spec.exposed:
        on_event(
            LaunchEvent("warning", f"ports are published on {spec.listen}: anyone who reaches this host can use Triton")
        )
    if spec.openai_off and spec.openai_off != NO_OPENAI:
        on_event(LaunchEvent("warning", spec.openai_off))

    http = TritonHttp(spec.http_url)
    models = _Models(spec, http)
    if reuse:
        container: Any = existing
        on_event(LaunchEvent("container", f"{spec.name} is running with these settings; keeping it"))
    else:
        stop()
        present = ensure_image(client, spec.image, on_progress)
        on_event(LaunchEvent("image", f"{spec.image} {'is present' if present else 'pulled'}"))
        stop()
        on_event(LaunchEvent("container", f"starting {spec.name}"))
        container, spec = _create_and_start(client, spec, on_event)

    sinks = [sink for sink in (on_log, observe_log) if sink is not None]

    def each_line(line: str) -> None:
        for sink in sinks:
            sink(line)

    follower = LogFollower(container, each_line, since=int(time.time()) if reuse else None).start() if sinks else None
    try:
        _wait_live(container, http, timeout_s=live_timeout_s, poll_s=poll_s, stop=stop)
        on_event(LaunchEvent("live", f"Triton is live at {spec.http_url}"))
        ready_before = _ready_models(http)
        unloaded = []
        for stale in sorted(ready_before - set(spec.models)):
            on_event(LaunchEvent("unload", f"unloading {stale}: the repository no longer lists it", model=stale))
            models.unload(stale)
            _wait_unloaded(http, stale, timeout_s=load_timeout_s, poll_s=poll_s)
            unloaded.append(stale)
        # Unload every changed model before loading anything: the new budgets only add up once
        # no engine holds an old, larger one.
        for name in [m for m in spec.models if m in set(reload) & ready_before]:
            on_event(LaunchEvent("unload", f"unloading {name} to load it again with its new budget", model=name))
            models.unload(name)
            _wait_unloaded(http, name, timeout_s=load_timeout_s, poll_s=poll_s)
            ready_before.discard(name)
            unloaded.append(name)
        loaded, already = [], []
        for name in spec.models:  # one at a time: see the module docstring
            if name in ready_before:
                already.append(name)
                on_event(LaunchEvent("ready", f"{name} is already ready", model=name))
                continue
            stop()
            on_event(LaunchEvent("load", f"loading {name}", model=name))
            started = time.monotonic()
            _load_one(container, http, models, name, timeout_s=load_timeout_s)
            loaded.append(name)
            took = time.monotonic() - started
            on_event(LaunchEvent("ready", f"{name} is ready ({took:.1f} s)", model=name, seconds=took))
    except TritonHttpError as error:
        lines = log_tail(container)
        raise LaunchFailed(f"Triton stopped answering: {error}", log_tail=lines, advice=advise(lines)) from error
    finally:
        if follower:
            follower.stop()
    for name, why in spec.completions_only:
        on_event(LaunchEvent("warning", f"{name} is completions-only at /v1/chat/completions: {why}", model=name))
    container.reload()
    return UpResult(
        name=spec.name,
        container_id=container.id,
        url=spec.http_url,
        reused=reuse,
        loaded=tuple(loaded),
        already_ready=tuple(already),
        unloaded=tuple(unloaded),
    )


def _wait_unloaded(http: TritonHttp, name: str, *, timeout_s: float, poll_s: float) -> None:
    """Triton answers an unload before the engine has let go of its GPU memory."""
    deadline = time.monotonic() + timeout_s
    while name in _ready_models(http) or name in _unloading_models(http):
        if time.monotonic() > deadline:
            raise LaunchFailed(f"{name} did not unload within {timeout_s:.0f} s", log_tail=[], advice=[])
        time.sleep(poll_s)


def _unloading_models(http: TritonHttp) -> set[str]:
    return {m.name for m in http.repository_index() if m.state == "UNLOADING"}


def _ready_models(http: TritonHttp) -> set[str]:
    return {m.name for m in http.repository_index() if m.state == "READY"}


# -- down and status ----------------------------------------------------------------------------


def down(client: Any, name: str, *, timeout_s: int = 30) -> bool:
    """Stop and remove the container; False when there was none. Refuses foreign containers."""
    container = find_container(client, name)
    if container is None:
        return False
    if _labels(container).get(LABEL_MANAGED) != "true":
        raise ModelwizError(
            f"the container {name} was not created by modelwiz; leaving it alone",
            hint="remove it with `podman rm -f` yourself if you mean to",
        )
    _remove(container, timeout_s)
    return True


@dataclass(frozen=True)
class LaunchStatus:
    name: str
    exists: bool
    state: str = "absent"  # podman's status: running, exited, created, ...
    image: str | None = None
    container_id: str | None = None
    started_at: str | None = None
    url: str | None = None
    models: tuple[ModelState, ...] = field(default_factory=tuple)
    error: str | None = None  # why the model states could not be read
    openai_url: str | None = None  # the OpenAI base URL (`.../v1`); None: the frontend is off
    chat_model: str | None = None  # the model whose tokenizer (chat template) the frontend uses
    grpc_address: str | None = None
    metrics_url: str | None = None
    repository: str | None = None  # the host folder it serves
    mount_point: str | None = None  # where the container sees it


def url_from_labels(labels: dict[str, str]) -> str | None:
    """Triton's HTTP URL from the ports label `listen:http,grpc,metrics`."""
    ports = parse_ports_label(labels.get(LABEL_PORTS) or "")
    return ports.http_url if ports else None


def status(client: Any, name: str) -> LaunchStatus:
    container = find_container(client, name)
    if container is None:
        return LaunchStatus(name=name, exists=False)
    labels = _labels(container)
    url = url_from_labels(labels)
    models: tuple[ModelState, ...] = ()
    error = None
    if container.status == "running" and url:
        try:
            models = tuple(TritonHttp(url).repository_index())
        except TritonHttpError as exc:
            error = str(exc)
    ports = parse_ports_label(labels.get(LABEL_PORTS) or "")
    openai = parse_openai_label(labels.get(LABEL_OPENAI) or "")
    return LaunchStatus(
        openai_url=f"http://{ports.host}:{openai.port}/v1" if ports and openai else None,
        chat_model=openai.chat_model if openai else None,
        grpc_address=f"{ports.host}:{ports.grpc}" if ports else None,
        metrics_url=f"http://{ports.host}:{ports.metrics}/metrics" if ports else None,
        repository=labels.get(LABEL_REPOSITORY),
        mount_point=labels.get(LABEL_MOUNT),
        name=name,
        exists=True,
        state=container.status,
        image=container.attrs.get("ImageName") or labels.get(LABEL_IMAGE),
        container_id=container.id,
        started_at=_started_at(container),
        url=url,
        models=models,
        error=error,
    )
