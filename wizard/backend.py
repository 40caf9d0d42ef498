"""The one boundary between the wizard's UIs (Textual in `screens/`, prompts in `wizard.plain`) and the core.

Both UIs talk to a `Backend` and nothing else: they never import the Hub, planner, download,
repository or launcher modules themselves. What crosses the boundary is plain, frozen dataclasses
(below) plus the core's own `GpuInventory`, `ModelPlan` and `ProgressEvent`. Errors cross as
`wizard.errors.ModelwizError` subclasses (with a `hint`), `wizard.gpus.NvmlError` among them.

`CoreBackend` implements the protocol over the core modules, imported lazily inside each method
so that the first screen paints before huggingface_hub, podman or protobuf are loaded. Tests use
`tests/fixtures_screens.FakeBackend`, which returns the same dataclasses and raises the same errors.

Every method may block (network, disk, containers): UIs call them from worker threads.
"""

from __future__ import annotations

import shutil
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator, Protocol, Sequence

from wizard.errors import ModelwizError
from wizard.units import format_bytes

if TYPE_CHECKING:
    from wizard.gpus import GpuInventory
    from wizard.plan_types import ModelPlan
    from wizard.progress import ProgressEvent


# ---------------------------------------------------------------------------------------------
# What crosses the boundary


@dataclass(frozen=True)
class Check:
    """One line of the machine check: what was looked at, what was found, and the fix."""

    key: str                        # "podman", "cdi", "hf-login", "disk", ...
    title: str                      # "Podman"
    status: str                     # "ok" | "warn" | "fail"
    summary: str                    # "podman 4.3.1 reachable at unix:///run/podman/podman.sock"
    hint: str | None = None         # the fix, when status is not ok
    blocks: str | None = None       # the first step it stops: "download" | "launch" | None

    @property
    def ok(self) -> bool:
        return self.status == "ok"


STATUSES = ("ok", "warn", "fail")


@dataclass(frozen=True)
class ModelCandidate:
    """A model the user could pick: a Hub search hit, a shortlist entry."""

    repo_id: str
    downloads: int | None = None
    gated: bool | str = False       # False, or the Hub's "auto" / "manual"
    parameters: int | None = None
    weights_bytes: int | None = None  # size of the weights on the Hub, when known
    fit: str = "unknown"            # "fits" | "split" | "no" | "unknown" (see quick_fit)
    fit_note: str = ""              # "fits one H100 80GB", "needs 2 GPUs (TP 2)", "too big: 140 GiB > 160 GiB"


@dataclass(frozen=True)
class ModelDetails:
    """One looked-up model: enough to decide whether it can be picked."""

    repo_id: str
    revision: str | None            # the commit the download will pin
    gated: bool | str = False
    access: str = "ok"              # "ok" | "needs-login" | "needs-request"
    access_note: str = ""           # what to do about access, when not ok
    weights_bytes: int | None = None
    vllm_supported: bool | None = None
    note: str = ""                  # e.g. the architecture vLLM does not know

    @property
    def pickable(self) -> bool:
        return self.access == "ok" and self.vllm_supported is not False


@dataclass(frozen=True)
class ExistingModel:
    """A model already in the Triton model repository (a re-run adds to these)."""

    name: str
    source: str                     # Hub repo id or local path
    plan: "ModelPlan | None" = None
    revision: str | None = None


@dataclass(frozen=True)
class ModelChoice:
    """What the user picked, with the settings they can edit on the plan screen."""

    repo_id: str
    name: str
    revision: str | None = None
    max_model_len: int | None = None  # None: the planner picks the longest that fits
    min_concurrency: int = 1


@dataclass(frozen=True)
class DeviceMemory:
    """How one device's memory is split by the plan (bytes). The parts add up to `total`."""

    device: str                     # CDI id: "0", "1:0"
    label: str                      # "GPU 0 · NVIDIA H100 80GB HBM3"
    total: int
    weights: int = 0
    kv_cache: int = 0
    overhead: int = 0
    other_processes: int = 0
    free: int = 0

    def parts(self) -> tuple[tuple[str, int], ...]:
        return (
            ("weights", self.weights),
            ("kv_cache", self.kv_cache),
            ("overhead", self.overhead),
            ("other_processes", self.other_processes),
            ("free", self.free),
        )


@dataclass(frozen=True)
class PlanView:
    """The planner's answer for the chosen models (and those already in the repository)."""

    models: tuple["ModelPlan", ...]
    devices: tuple[DeviceMemory, ...]
    fits: bool
    raw: Any = field(default=None, compare=False, repr=False)  # the core's Plan, handed back to write/launch

    def model(self, name: str) -> "ModelPlan | None":
        return next((m for m in self.models if m.name == name), None)


@dataclass(frozen=True)
class DiskCheck:
    path: Path
    needed_bytes: int
    free_bytes: int

    @property
    def ok(self) -> bool:
        return self.free_bytes >= self.needed_bytes

    def explain(self) -> str:
        return (
            f"the downloads need {format_bytes(self.needed_bytes)} but {self.path} has "
            f"{format_bytes(self.free_bytes)} free"
        )


@dataclass(frozen=True)
class PullProgress:
    """The container image is being pulled."""

    progress: "ProgressEvent"


@dataclass(frozen=True)
class LogLine:
    """One line of the server's log."""

    text: str


MODEL_STATES = ("waiting", "loading", "ready", "failed")


@dataclass(frozen=True)
class ModelState:
    """A model's state in the running server."""

    name: str
    state: str                      # one of MODEL_STATES
    detail: str = ""                # for "failed": the log excerpt that says why


LaunchEvent = PullProgress | LogLine | ModelState


@dataclass(frozen=True)
class Endpoints:
    """Where the launched server answers."""

    http: str                       # "http://127.0.0.1:8000"
    grpc: str                       # "127.0.0.1:8001"
    metrics: str                    # "http://127.0.0.1:8002/metrics"
    models: tuple[str, ...] = ()


# ---------------------------------------------------------------------------------------------
# The protocol


class Backend(Protocol):
    """What the wizard needs from the core. Every method may block; call it from a worker."""

    spec: str | None                  # the --gpus text the run started with, if any

    def repository_path(self) -> Path: ...

    def existing_models(self) -> tuple[ExistingModel, ...]: ...

    def load_inventory(self, spec: str | None) -> "GpuInventory":
        """The GPUs (NVML, or `spec` when given). Raises NvmlError/UsageError."""

    def machine_checks(self, inventory: "GpuInventory | None") -> Iterator[Check]:
        """Podman, CDI, Hugging Face login, disk: yielded one by one as each finishes."""

    def popular_models(self, inventory: "GpuInventory | None") -> list[ModelCandidate]: ...

    def search_models(self, query: str, inventory: "GpuInventory | None", *, limit: int = 20) -> list[ModelCandidate]: ...

    def model_details(self, repo_id: str) -> ModelDetails: ...

    def plan(
        self,
        inventory: "GpuInventory",
        choices: Sequence[ModelChoice],
        existing: Sequence[ExistingModel] = (),
    ) -> PlanView: ...

    def disk_check(self, choices: Sequence[ModelChoice]) -> DiskCheck: ...

    def download(
        self,
        choice: ModelChoice,
        *,
        on_progress: Callable[["ProgressEvent"], None],
        cancel: threading.Event,
    ) -> None:
        """Fetch one model. Raises wizard.errors.Cancelled when `cancel` is set (done files stay)."""

    def write_repository(self, plan: PlanView, choices: Sequence[ModelChoice]) -> None: ...

    def launch(
        self,
        plan: PlanView,
        *,
        on_event: Callable[[LaunchEvent], None],
        cancel: threading.Event,
    ) -> Endpoints:
        """Pull the image, start (or update) the server, wait until every model is ready."""

    def generate_stream(self, endpoints: Endpoints, model: str, prompt: str) -> Iterator[str]:
        """The model's reply to `prompt`, piece by piece."""


# ---------------------------------------------------------------------------------------------
# Pure helpers both UIs use


def quick_fit(weights_bytes: int | None, inventory: "GpuInventory | None") -> tuple[str, str]:
    """A first answer to "does it fit?" from the weights' size alone, for search lists.

    The planner gives the real answer on the plan screen; this only sorts a list at a glance:
    weights plus 20% (KV cache for a short context, CUDA graphs, activations) against the memory
    CUDA sees on the biggest device, then on all devices together (tensor parallel).
    """
    if weights_bytes is None or inventory is None or not inventory.devices:
        return "unknown", ""
    need = int(weights_bytes * 1.2)
    devices = sorted(inventory.devices, key=lambda g: g.cuda_total_bytes, reverse=True)
    biggest = devices[0]
    if need <= biggest.cuda_total_bytes - biggest.other_processes_bytes:
        return "fits", f"fits one {biggest.name}"
    total = 0
    for count, gpu in enumerate(devices, start=1):
        total += gpu.cuda_total_bytes - gpu.other_processes_bytes
        if need <= total and count in (2, 4, 8):
            return "split", f"needs {count} GPUs (tensor parallel {count})"
    usable = sum(g.cuda_total_bytes for g in devices)
    return "no", f"too big: about {format_bytes(need)} needed, {format_bytes(usable)} on all GPUs"


def curl_command(endpoints: Endpoints, model: str, prompt: str = "What is Triton Inference Server?") -> str:
    """A copyable request against Triton's generate endpoint (vLLM backend's text_input)."""
    import json

    body = json.dumps({"text_input": prompt, "parameters": {"stream": False, "max_tokens": 128}})
    return f"curl -s {endpoints.http}/v2/models/{model}/generate \\\n  -d '{body}'"


def free_bytes_at(path: Path) -> int:
    """Free space on the file system that holds `path` (or would, once created)."""
    probe = Path(path).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def blocking(checks: Sequence[Check], step: str) -> tuple[Check, ...]:
    """The failed checks that stop `step` ("download" or "launch")."""
    order = ("download", "launch")
    reach = order.index(step)
    return tuple(
        c for c in checks if c.status == "fail" and c.blocks in order and order.index(c.blocks) <= reach
    )


# ---------------------------------------------------------------------------------------------
# The real thing


def _failed(key: str, title: str, error: Exception, blocks: str | None, status: str = "fail") -> Check:
    if isinstance(error, ModelwizError):
        return Check(key, title, status, error.message, error.hint, blocks)
    return Check(key, title, status, f"{type(error).__name__}: {error}", None, blocks)


class CoreBackend:
    """`Backend` over the core modules (imported lazily: nothing heavy before the first paint)."""

    def __init__(self, *, spec: str | None = None, repository: Path | None = None) -> None:
        self.spec = spec
        self._repository = repository
        self._lock = threading.Lock()

    # -- repository ---------------------------------------------------------------------------
    def repository_path(self) -> Path:
        if self._repository is None:
            from wizard import repository

            self._repository = Path(repository.default_repository_path())
        return self._repository

    def _open_repository(self) -> Any:
        from wizard import repository

        return repository.open_repository(self.repository_path())

    def existing_models(self) -> tuple[ExistingModel, ...]:
        repo = self._open_repository()
        out = []
        for entry in repo.list_models():
            out.append(
                ExistingModel(
                    name=entry.name,
                    source=getattr(entry, "source", entry.name),
                    plan=getattr(entry, "plan", None),
                    revision=getattr(entry, "revision", None),
                )
            )
        return tuple(out)

    # -- machine ------------------------------------------------------------------------------
    def load_inventory(self, spec: str | None) -> "GpuInventory":
        from wizard.gpus import load_inventory

        return load_inventory(spec)

    def machine_checks(self, inventory: "GpuInventory | None") -> Iterator[Check]:
        try:
            from wizard import podman_conn

            version = podman_conn.check_reachable()
            yield Check("podman", "Podman", "ok", f"podman {version} reachable")
        except Exception as error:  # noqa: BLE001 - every failure becomes a row with its fix
            yield _failed("podman", "Podman", error, "launch")
        if inventory is not None and inventory.source == "nvml":
            try:
                from wizard import launcher

                summary = launcher.check_cdi(inventory)
                yield Check("cdi", "GPU access (CDI)", "ok", str(summary))
            except Exception as error:  # noqa: BLE001
                yield _failed("cdi", "GPU access (CDI)", error, "launch")
        try:
            from wizard import hub

            auth = hub.auth_status()
            if auth.logged_in:
                yield Check("hf-login", "Hugging Face", "ok", f"logged in as {auth.user} ({auth.source})")
            else:
                yield Check(
                    "hf-login",
                    "Hugging Face",
                    "warn",
                    "not logged in: gated models (Llama, Gemma, ...) cannot be downloaded",
                    "run `modelwiz login` (or set HF_TOKEN) to use gated models",
                )
        except Exception as error:  # noqa: BLE001
            yield _failed("hf-login", "Hugging Face", error, None, "warn")
        yield self._disk_row()

    def _disk_row(self) -> Check:
        path = self.repository_path()
        free = free_bytes_at(path)
        status = "ok" if free >= 20 * 1024**3 else "warn"
        hint = None if status == "ok" else "free some space, or point the repository elsewhere"
        return Check("disk", "Disk", status, f"{format_bytes(free)} free at {path}", hint)

    # -- models -------------------------------------------------------------------------------
    def _candidate(self, hit: Any, inventory: "GpuInventory | None") -> ModelCandidate:
        size = getattr(hit, "weights_bytes", None) or getattr(hit, "size", None)
        fit, note = quick_fit(size, inventory)
        return ModelCandidate(
            repo_id=hit.repo_id,
            downloads=getattr(hit, "downloads", None),
            gated=getattr(hit, "gated", False) or False,
            parameters=getattr(hit, "parameters", None),
            weights_bytes=size,
            fit=fit,
            fit_note=note,
        )

    def popular_models(self, inventory: "GpuInventory | None") -> list[ModelCandidate]:
        return self.search_models("", inventory, limit=12)

    def search_models(self, query: str, inventory: "GpuInventory | None", *, limit: int = 20) -> list[ModelCandidate]:
        from wizard import hub

        return [self._candidate(h, inventory) for h in hub.search_models(query, limit=limit)]

    def model_details(self, repo_id: str) -> ModelDetails:
        from wizard import hub

        model = hub.lookup_model(repo_id)
        gated = getattr(model, "gated", False) or False
        access, note = "ok", ""
        if gated:
            auth = hub.auth_status()
            if not auth.logged_in:
                access = "needs-login"
                note = f"{repo_id} is gated: log in with `modelwiz login` after accepting its terms on huggingface.co"
            elif hasattr(hub, "check_access") and not hub.check_access(repo_id):
                access = "needs-request"
                note = f"{repo_id} is gated: accept its terms at https://huggingface.co/{repo_id} first"
        weights = getattr(model, "weights_bytes", None)
        supported = getattr(model, "vllm_supported", None)
        return ModelDetails(
            repo_id=repo_id,
            revision=getattr(model, "sha", None),
            gated=gated,
            access=access,
            access_note=note,
            weights_bytes=weights,
            vllm_supported=supported,
            note="" if supported is not False else "vLLM does not support this model's architecture",
        )

    # -- plan ---------------------------------------------------------------------------------
    def plan(
        self,
        inventory: "GpuInventory",
        choices: Sequence[ModelChoice],
        existing: Sequence[ExistingModel] = (),
    ) -> PlanView:
        from wizard import model_meta, planner

        requests = [
            planner.ModelRequest(
                model_meta.load_model_meta(c.repo_id),
                c.name,
                max_model_len=c.max_model_len,
                min_concurrency=c.min_concurrency,
            )
            for c in choices
        ]
        old = tuple(e.plan for e in existing if e.plan is not None)
        plan = planner.plan_models(inventory, requests, existing=old)
        labels = {g.cdi_id: g for g in inventory.devices}
        devices = []
        for budget in plan.gpus:
            device = str(getattr(budget, "device", getattr(budget, "cdi_id", "")))
            gpu = labels.get(device)
            devices.append(
                DeviceMemory(
                    device=device,
                    label=f"GPU {device} · {gpu.name}" if gpu else f"GPU {device}",
                    total=budget.total,
                    weights=budget.weights,
                    kv_cache=budget.kv_cache,
                    overhead=budget.overhead,
                    other_processes=budget.other_processes,
                    free=budget.free,
                )
            )
        return PlanView(models=tuple(plan.models), devices=tuple(devices), fits=bool(plan.fits), raw=plan)

    # -- download -----------------------------------------------------------------------------
    def disk_check(self, choices: Sequence[ModelChoice]) -> DiskCheck:
        from wizard import download

        needed = sum(download.plan_download(c.repo_id, revision=c.revision).bytes_to_fetch for c in choices)
        target = self.repository_path()  # download_model writes into <repository>/<name>
        return DiskCheck(path=target, needed_bytes=needed, free_bytes=free_bytes_at(target))

    def download(self, choice: ModelChoice, *, on_progress: Callable[["ProgressEvent"], None], cancel: threading.Event) -> None:
        from wizard import download

        dest = self.repository_path() / choice.name
        download.download_model(choice.repo_id, dest, revision=choice.revision, on_progress=on_progress, cancel=cancel)

    # -- repository and launch ----------------------------------------------------------------
    def write_repository(self, plan: PlanView, choices: Sequence[ModelChoice]) -> None:
        from wizard import add_flow

        add_flow.write_models(self.repository_path(), plan.raw, choices)

    def launch(self, plan: PlanView, *, on_event: Callable[[LaunchEvent], None], cancel: threading.Event) -> Endpoints:
        from wizard import launcher

        def progress(event: "ProgressEvent") -> None:
            on_event(PullProgress(event))

        def log(line: str) -> None:
            on_event(LogLine(line))

        def state(name: str, value: str, detail: str = "") -> None:
            on_event(ModelState(name, value, detail))

        result = launcher.up(
            self.repository_path(),
            on_pull_progress=progress,
            on_log=log,
            on_model_state=state,
            cancel=cancel,
        )
        return Endpoints(
            http=result.http_url,
            grpc=result.grpc_url,
            metrics=result.metrics_url,
            models=tuple(m.name for m in plan.models),
        )

    def generate_stream(self, endpoints: Endpoints, model: str, prompt: str) -> Iterator[str]:
        from wizard import triton_http

        yield from triton_http.generate_stream(endpoints.http, model, prompt)
