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
    """A copyable request against Triton's generate endpoint (the one `modelwiz up` prints)."""
    from wizard.triton_http import curl_example

    return curl_example(endpoints.http, model, prompt=prompt)


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
    """`Backend` over the core (imported lazily: nothing heavy before the first paint).

    It drives the same functions as `modelwiz add`: `add_flow.prepare_add` plans (jointly with the
    repository's models), `execute_add` records, downloads and writes, `serve.start_server`
    launches. Metadata read from the Hub is cached, so re-planning as the user edits is instant.
    """

    def __init__(self, *, spec: str | None = None, repository: Path | None = None, serve_options: Any = None) -> None:
        self.spec = spec
        self._repository = repository
        self._serve_options = serve_options  # wizard.serve.ServeOptions; None: as `modelwiz up`
        self._metas: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._proposal: Any = None        # the last add_flow.AddProposal, for download and write
        self._result: Any = None          # the last add_flow.AddResult, for launch
        self._serving_now: frozenset[str] | None = None

    # -- repository ---------------------------------------------------------------------------
    def repository_path(self) -> Path:
        if self._repository is None:
            from wizard.repository import configured_repository

            self._repository = configured_repository() or Path.home() / "models"
        return self._repository

    def _open(self) -> Any:
        from wizard.repository import Repository

        # create=True writes nothing until something is saved.
        return Repository.open(self.repository_path(), create=True)

    def existing_models(self) -> tuple[ExistingModel, ...]:
        if not self.repository_path().is_dir():
            return ()
        out = []
        for model in self._open().models():
            entry = model.entry
            out.append(
                ExistingModel(
                    name=model.name,
                    source=entry.source if entry else model.name,
                    plan=entry.plan if entry else None,
                    revision=entry.revision if entry else None,
                )
            )
        return tuple(out)

    # -- machine ------------------------------------------------------------------------------
    def load_inventory(self, spec: str | None) -> "GpuInventory":
        from wizard.gpus import load_inventory

        return load_inventory(spec)

    def machine_checks(self, inventory: "GpuInventory | None") -> Iterator[Check]:
        rows: list[tuple[str, str, str | None, Callable[[], Check]]] = [("podman", "Podman", "launch", self._podman_row)]
        if inventory is not None:
            rows.append(("image", "Triton image", "launch", lambda: self._image_row(inventory)))
        if inventory is not None and inventory.source == "nvml":
            rows.append(("cdi", "GPU access (CDI)", "launch", lambda: self._cdi_row(inventory)))
        rows += [("hf-login", "Hugging Face", None, self._hub_row), ("disk", "Disk", None, self._disk_row)]
        for key, title, blocks, row in rows:
            try:
                yield row()
            except Exception as error:  # noqa: BLE001 - a check that breaks is a row with its reason
                yield _failed(key, title, error, blocks)

    def _podman_row(self) -> Check:
        try:
            from wizard import podman_conn

            client = podman_conn.connect(timeout=5)
            try:
                version = client.version().get("Version", "?")
            finally:
                client.close()
            return Check("podman", "Podman", "ok", f"podman {version} reachable")
        except Exception as error:  # noqa: BLE001 - every failure becomes a row with its fix
            return _failed("podman", "Podman", error, "launch")

    def _image_row(self, inventory: "GpuInventory") -> Check:
        from wizard.images import pick_image

        info = pick_image(inventory.driver_version)
        if info is None:
            return Check(
                "image", "Triton image", "fail",
                f"driver {inventory.driver_version} is older than every Triton vLLM image needs",
                "update the NVIDIA driver", "launch",
            )
        driver = f"driver {inventory.driver_version}" if inventory.driver_version else "described GPUs"
        return Check("image", "Triton image", "ok", f"{info.short_tag} (vLLM {info.vllm_release}) for {driver}")

    def _cdi_row(self, inventory: "GpuInventory") -> Check:
        from wizard.preflight import check_cdi

        devices = [d.cdi_id for d in inventory.devices]
        problem = check_cdi(devices)
        if problem is None:
            return Check("cdi", "GPU access (CDI)", "ok", f"nvidia.com/gpu={','.join(devices)} declared")
        return Check("cdi", "GPU access (CDI)", "fail", problem.message, problem.fix, "launch")

    def _hub_row(self) -> Check:
        try:
            from wizard import hub

            auth = hub.auth_status()
        except Exception as error:  # noqa: BLE001
            return _failed("hf-login", "Hugging Face", error, None, "warn")
        if auth.logged_in:
            return Check("hf-login", "Hugging Face", "ok", f"logged in as {auth.user} ({auth.source})")
        return Check(
            "hf-login", "Hugging Face", "warn",
            auth.message or "not logged in: gated models (Llama, Gemma, ...) cannot be downloaded",
            "run `modelwiz login` (or set HF_TOKEN) to use gated models",
        )

    def _disk_row(self) -> Check:
        path = self.repository_path()
        free = free_bytes_at(path)
        status = "ok" if free >= 20 * 1024**3 else "warn"
        hint = None if status == "ok" else "free some space, or point the repository elsewhere"
        return Check("disk", "Disk", status, f"{format_bytes(free)} free at {path}", hint)

    # -- models -------------------------------------------------------------------------------
    def _candidate(self, hit: Any, inventory: "GpuInventory | None") -> ModelCandidate:
        size = hit.weight_bytes
        fit, note = quick_fit(size, inventory)
        return ModelCandidate(
            repo_id=hit.repo_id,
            downloads=hit.downloads,
            gated=hit.gated or False,
            parameters=hit.parameters,
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

        try:
            model = hub.lookup_model(repo_id)
        except hub.GatedNotLoggedIn as error:
            return ModelDetails(repo_id, None, gated=True, access="needs-login", access_note=error.one_line())
        except hub.GatedNoAccess as error:
            return ModelDetails(repo_id, None, gated=True, access="needs-request", access_note=error.one_line())
        return ModelDetails(
            repo_id=repo_id,
            revision=model.sha,
            gated=model.gated or False,
            weights_bytes=model.weight_bytes,
            vllm_supported=model.vllm_supported,
            note="" if model.vllm_supported else (model.vllm_message or "vLLM does not serve this architecture"),
        )

    # -- plan ---------------------------------------------------------------------------------
    def _meta(self, ref: str) -> Any:
        with self._lock:
            cached = self._metas.get(ref)
        if cached is None:
            from wizard.model_meta import load_model_meta

            cached = load_model_meta(ref)
            with self._lock:
                self._metas[ref] = cached
        return cached

    def _prepare(self, inventory: "GpuInventory", choices: Sequence[ModelChoice], *, check_disk: bool) -> Any:
        from wizard.add_flow import AddRequest, prepare_add

        requests = [AddRequest(c.repo_id, c.name, c.max_model_len, c.min_concurrency) for c in choices]
        return prepare_add(
            self._open(), requests, inventory=inventory, meta_loader=self._meta, refuse=False,
            check_disk=check_disk, existing_running=self._serving(inventory),
        )

    def _serving(self, inventory: "GpuInventory") -> frozenset[str]:
        """The repository's models that hold GPU memory now (asked once per run)."""
        if self._serving_now is None:
            from wizard.serve import models_holding_gpu_memory

            self._serving_now = models_holding_gpu_memory(self.repository_path(), inventory)
        return self._serving_now

    def plan(
        self,
        inventory: "GpuInventory",
        choices: Sequence[ModelChoice],
        existing: Sequence[ExistingModel] = (),  # the repository itself is the source of truth
    ) -> PlanView:
        proposal = self._prepare(inventory, choices, check_disk=False)
        self._proposal = proposal
        self._inventory = inventory
        labels = {g.cdi_id: g for g in inventory.devices}
        devices = tuple(
            DeviceMemory(
                device=b.device,
                label=f"GPU {b.device} · {labels[b.device].name}" if b.device in labels else f"GPU {b.device}",
                total=b.total_bytes,
                weights=b.weights_bytes,
                kv_cache=b.kv_cache_bytes,
                overhead=b.overhead_bytes + b.driver_reserved_bytes,
                other_processes=b.other_processes_bytes,
                free=b.free_bytes,
            )
            for b in (proposal.plan.gpus if proposal.plan is not None else ())
        )
        models = proposal.kept + tuple(c.new for c in proposal.changed) + tuple(n.plan for n in proposal.new)
        return PlanView(models=models, devices=devices, fits=proposal.fits, raw=proposal)

    # -- download -----------------------------------------------------------------------------
    def disk_check(self, choices: Sequence[ModelChoice]) -> DiskCheck:
        from wizard.add_flow import bytes_to_download

        proposal = self._proposal
        needed = bytes_to_download(self._open(), proposal.new, None) if proposal is not None else 0
        target = self.repository_path()
        return DiskCheck(path=target, needed_bytes=needed or 0, free_bytes=free_bytes_at(target))

    def download(self, choice: ModelChoice, *, on_progress: Callable[["ProgressEvent"], None], cancel: threading.Event) -> None:
        """Record the model as downloading, fetch it into the repository, write its files."""
        from dataclasses import replace

        from wizard.add_flow import execute_add

        proposal = self._proposal
        # One model at a time, with the plan's budget changes (applied before the first byte moves).
        one = replace(proposal, new=tuple(n for n in proposal.new if n.plan.name == choice.name))
        with self._open().lock():
            execute_add(self._open(), one, on_progress=on_progress, cancel=cancel)

    # -- repository and launch ----------------------------------------------------------------
    def write_repository(self, plan: PlanView, choices: Sequence[ModelChoice]) -> None:
        """Write every file of the joint plan (the downloads are done: nothing is fetched again)."""
        from wizard.add_flow import execute_add
        from wizard.repository import remember_repository

        with self._open().lock():
            self._result = execute_add(self._open(), plan.raw)
        remember_repository(self.repository_path())

    def launch(self, plan: PlanView, *, on_event: Callable[[LaunchEvent], None], cancel: threading.Event) -> Endpoints:
        from wizard.serve import ServeOptions, start_server

        states = {"load": "loading", "ready": "ready"}

        def event(e: Any) -> None:
            if e.model and e.stage in states:
                on_event(ModelState(e.model, states[e.stage], e.message))

        reload = self._result.rewritten if self._result is not None else ()
        try:
            serving = start_server(
                self.repository_path(),
                gpus_spec=self.spec,
                options=self._serve_options or ServeOptions(),
                on_event=event,
                on_progress=lambda p: on_event(PullProgress(p)),
                on_log=lambda line: on_event(LogLine(line)),
                reload=reload,
                cancel=cancel,
            )
        except ModelwizError as error:
            model = getattr(error, "model", None)
            if model:
                on_event(ModelState(model, "failed", error.message))
            raise
        spec = serving.spec
        host = spec.http_url.split("//", 1)[1].rsplit(":", 1)[0]
        return Endpoints(
            http=spec.http_url,
            grpc=f"{host}:{spec.grpc_port}",
            metrics=f"http://{host}:{spec.metrics_port}/metrics",
            models=tuple(spec.models),
        )

    def generate_stream(self, endpoints: Endpoints, model: str, prompt: str) -> Iterator[str]:
        from wizard.triton_http import TritonHttp, generate_body

        for event in TritonHttp(endpoints.http).generate_stream(model, generate_body(prompt)):
            yield str(event.get("text_output", ""))
