"""`CoreService`: the wizard's `WizardService` over the core modules.

It drives the same functions as `modelwiz add`. The core modules are imported lazily inside each
method so that the first screen paints before huggingface_hub, podman or protobuf are loaded.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from wizard.errors import ModelwizError
from wizard.service import (
    Check,
    DeviceMemory,
    DiskCheck,
    Endpoints,
    ExistingModel,
    LaunchEvent,
    LogLine,
    ModelCandidate,
    ModelChoice,
    ModelDetails,
    ModelState,
    PlanView,
    PullProgress,
    free_bytes_at,
    quick_fit,
)
from wizard.units import format_bytes

if TYPE_CHECKING:
    from wizard.gpus import GpuInventory
    from wizard.progress import ProgressEvent


def _failed(key: str, title: str, error: Exception, blocks: str | None, status: str = "fail") -> Check:
    if isinstance(error, ModelwizError):
        return Check(key, title, status, error.message, error.hint, blocks)
    return Check(key, title, status, f"{type(error).__name__}: {error}", None, blocks)


class CoreService:
    """`WizardService` over the core (imported lazily: nothing heavy before the first paint).

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
        self._proposal: Any = None  # the last add_flow.AddProposal, for download and write
        self._result: Any = None  # the last add_flow.AddResult, for launch
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
                    complete=entry.complete if entry else True,
                )
            )
        return tuple(out)

    # -- machine ------------------------------------------------------------------------------
    def load_inventory(self, spec: str | None) -> GpuInventory:
        from wizard.gpus import load_inventory

        return load_inventory(spec)

    def machine_checks(self, inventory: GpuInventory | None) -> Iterator[Check]:
        rows: list[tuple[str, str, str | None, Callable[[], Check]]] = [
            ("podman", "Podman", "launch", self._podman_row)
        ]
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

    def _image_row(self, inventory: GpuInventory) -> Check:
        from wizard.images import pick_image

        info = pick_image(inventory.driver_version)
        if info is None:
            return Check(
                "image",
                "Triton image",
                "fail",
                f"driver {inventory.driver_version} is older than every Triton vLLM image needs",
                "update the NVIDIA driver",
                "launch",
            )
        driver = f"driver {inventory.driver_version}" if inventory.driver_version else "described GPUs"
        return Check("image", "Triton image", "ok", f"{info.short_tag} (vLLM {info.vllm_release}) for {driver}")

    def _cdi_row(self, inventory: GpuInventory) -> Check:
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
            "hf-login",
            "Hugging Face",
            "warn",
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
    def _candidate(self, hit: Any, inventory: GpuInventory | None) -> ModelCandidate:
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

    def popular_models(self, inventory: GpuInventory | None) -> list[ModelCandidate]:
        return self.search_models("", inventory, limit=12)

    def search_models(self, query: str, inventory: GpuInventory | None, *, limit: int = 20) -> list[ModelCandidate]:
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

    def _prepare(self, inventory: GpuInventory, choices: Sequence[ModelChoice], *, check_disk: bool) -> Any:
        from wizard.add_flow import AddRequest, prepare_add

        requests = [AddRequest(c.repo_id, c.name, c.max_model_len, c.min_concurrency) for c in choices]
        return prepare_add(
            self._open(),
            requests,
            inventory=inventory,
            meta_loader=self._meta,
            refuse=False,
            check_disk=check_disk,
            existing_running=self._serving(inventory),
        )

    def _serving(self, inventory: GpuInventory) -> frozenset[str]:
        """The repository's models that hold GPU memory now (asked once per run)."""
        if self._serving_now is None:
            from wizard.serve import models_holding_gpu_memory

            self._serving_now = models_holding_gpu_memory(self.repository_path(), inventory)
        return self._serving_now

    def plan(
        self,
        inventory: GpuInventory,
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
        names = {n.source: n.plan.name for n in proposal.new}
        return PlanView(models=models, devices=devices, fits=proposal.fits, raw=proposal, names=names)

    # -- download -----------------------------------------------------------------------------
    def disk_check(self, choices: Sequence[ModelChoice]) -> DiskCheck:
        from wizard.add_flow import bytes_to_download

        proposal = self._proposal
        needed = bytes_to_download(self._open(), proposal.new, None) if proposal is not None else 0
        target = self.repository_path()
        return DiskCheck(path=target, needed_bytes=needed or 0, free_bytes=free_bytes_at(target))

    def download(
        self, choice: ModelChoice, *, on_progress: Callable[[ProgressEvent], None], cancel: threading.Event
    ) -> None:
        """Record the model as downloading, fetch it into the repository, write its files."""
        from dataclasses import replace

        from wizard.add_flow import execute_add

        proposal = self._proposal
        # One model at a time, with the plan's budget changes (applied before the first byte moves).
        one = replace(proposal, new=tuple(n for n in proposal.new if n.source == choice.repo_id))
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
