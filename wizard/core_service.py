"""`CoreService`: the wizard's `WizardService` over the core modules.

It runs the same `wizard.session.AddSession` as `modelwiz add`. `modelwiz` imports it before the
first frame, so the session, serve and launcher modules are imported inside the methods that use
them (about 40 ms), and the heavy libraries (huggingface_hub, podman, protobuf) load later still,
inside the core functions that use them.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from wizard import hub, podman_conn
from wizard.catalog import CatalogModel, load_catalog
from wizard.container_defaults import DEFAULT_NAME
from wizard.errors import ModelwizError
from wizard.gpus import GpuInventory, load_inventory
from wizard.images import pick_image
from wizard.naming import check_name
from wizard.preflight import check_cdi, choose_image
from wizard.repository import (
    DOWNLOADING,
    FOREIGN,
    KEPT,
    READY,
    Repository,
    configured_repository,
    remember_repository,
)
from wizard.service import (
    Check,
    CheckStatus,
    DeviceMemory,
    DiskCheck,
    Endpoints,
    ExistingModel,
    GpuUse,
    HomeModel,
    LaunchEvent,
    LogLine,
    ModelCandidate,
    ModelChoice,
    ModelDetails,
    ModelState,
    PlanView,
    PullProgress,
    ServerView,
    ServingState,
    Stage,
    endpoint_lines,
    free_bytes_at,
    quick_fit,
)
from wizard.units import format_bytes

if TYPE_CHECKING:
    from wizard import launcher
    from wizard.add_flow import AddProposal, HubReader
    from wizard.chat_session import ChatSession
    from wizard.container import LaunchSpec
    from wizard.progress import ProgressEvent
    from wizard.serve import Reporter, ServeOptions
    from wizard.session import AddSession


LAUNCH_STATES: dict[str, ServingState] = {"load": "loading", "ready": "ready"}  # launcher stage -> state
# Triton's model states (GET /v2/repository/index) as the wizard shows them; UNAVAILABLE is
# "failed" when Triton gives a reason other than an unload.
TRITON_STATES: dict[str, ServingState] = {"READY": "ready", "LOADING": "loading", "UNLOADING": "loading"}
TRITON_UNLOADED = "unloaded"
LOG_LINES = 200  # the server log's lines the home screen shows


def _reporter(on_event: Callable[[LaunchEvent], None], cancel: threading.Event) -> Reporter:
    """The launcher's callbacks as the wizard's launch events."""
    from wizard.serve import Reporter

    def event(e: launcher.LaunchEvent) -> None:
        if e.model and e.stage in LAUNCH_STATES:
            on_event(ModelState(e.model, LAUNCH_STATES[e.stage], e.message))

    return Reporter(
        on_event=event,
        on_progress=lambda p: on_event(PullProgress(p)),
        on_log=lambda line: on_event(LogLine(line)),
        cancel=cancel,
    )


@contextlib.contextmanager
def _failed_model_reported(on_event: Callable[[LaunchEvent], None]) -> Iterator[None]:
    """A launch error that names a model marks that model failed, then goes on up."""
    try:
        yield
    except ModelwizError as error:
        model = getattr(error, "model", None)
        if model:
            on_event(ModelState(model, "failed", error.message))
        raise


def _endpoints(spec: LaunchSpec) -> Endpoints:
    return Endpoints(
        http=spec.http_url,
        grpc=spec.grpc_address,
        metrics=spec.metrics_url,
        models=tuple(spec.models),
        openai=spec.openai_url,
        completions_only=tuple(name for name, _ in spec.completions_only),
        mount_point=spec.mount_point,
        chat_model=spec.chat_model,
    )


def serving_state(state: str, reason: str) -> tuple[ServingState, str]:
    """Triton's state of a model (and its reason) as the wizard shows it."""
    if state in TRITON_STATES:
        return TRITON_STATES[state], ""
    if state == "UNAVAILABLE" and reason and reason != TRITON_UNLOADED:
        return "failed", reason
    return "waiting", ""


def catalog_candidate(model: CatalogModel, inventory: GpuInventory | None) -> ModelCandidate:
    fit, note = quick_fit(model.weights_bytes, inventory)
    return ModelCandidate(
        repo_id=model.repo_id,
        gated=model.gated,
        parameters=model.parameters,
        weights_bytes=model.weights_bytes,
        fit=fit,
        fit_note=note,
    )


def _folder_bytes(path: Path) -> int:
    try:
        return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())
    except OSError:
        return 0


def _failed(key: str, title: str, error: Exception, blocks: Stage | None, status: CheckStatus = "fail") -> Check:
    if isinstance(error, ModelwizError):
        return Check(key, title, status, error.message, error.hint, blocks)
    return Check(key, title, status, f"{type(error).__name__}: {error}", None, blocks)


class CoreService:
    """`WizardService` over the core.

    It drives an `AddSession`, as `modelwiz add` does: `propose` plans (jointly with the
    repository's models, named by the core's rule), `fetch` downloads one model at the commit
    planned, `write` writes the repository, `launch` starts the server. The state of the flow
    travels in the `PlanView` (its `raw` is the proposal); what is kept here is the machine and
    the Hub lookups, so re-planning as the user edits reads the Hub once per model.
    """

    def __init__(
        self, *, spec: str | None = None, repository: Path | None = None, serve_options: ServeOptions | None = None
    ) -> None:
        self.spec = spec
        self._repository = repository
        self._serve_options = serve_options  # None: as `modelwiz up`
        self._hub_reader: HubReader | None = None
        self._session: AddSession | None = None
        self._lock = threading.Lock()

    @property
    def _reader(self) -> HubReader:
        """Every Hub lookup of this run: the details shown, then the plans."""
        if self._hub_reader is None:
            from wizard.add_flow import HubReader

            self._hub_reader = HubReader()
        return self._hub_reader

    # -- repository ---------------------------------------------------------------------------
    def repository_path(self) -> Path:
        if self._repository is None:
            self._repository = configured_repository() or Path.home() / "models"
        return self._repository

    def _open(self) -> Repository:
        # create=True writes nothing until something is saved.
        return Repository.open(self.repository_path(), create=True)

    def existing_models(self) -> tuple[ExistingModel, ...]:
        if not self.repository_path().is_dir():
            return ()
        # The manifest and the folder names say it all: no config.pbtxt is parsed here (that loads
        # protobuf), so a re-run's first screen is not kept waiting.
        repo = self._open()
        out = []
        for name in sorted(set(repo.folder_names()) | set(repo.manifest.names)):
            entry = repo.manifest.get(name)
            out.append(
                ExistingModel(
                    name=name,
                    source=entry.source if entry else name,
                    plan=entry.plan if entry else None,
                    revision=entry.revision if entry else None,
                    complete=entry.complete if entry else True,
                )
            )
        return tuple(out)

    # -- machine ------------------------------------------------------------------------------
    def load_inventory(self, spec: str | None) -> GpuInventory:
        return load_inventory(spec)

    def machine_checks(self, inventory: GpuInventory | None) -> Iterator[Check]:
        rows: list[tuple[str, str, Stage | None, Callable[[], Check]]] = [
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
            client = podman_conn.connect(timeout=5)
            try:
                version = client.version().get("Version", "?")
            finally:
                client.close()
            return Check("podman", "Podman", "ok", f"podman {version} reachable")
        except Exception as error:  # noqa: BLE001 - every failure becomes a row with its fix
            return _failed("podman", "Podman", error, "launch")

    def _image_row(self, inventory: GpuInventory) -> Check:
        info = pick_image(inventory.driver_version, inventory.gpu_kind)
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
        devices = [d.cdi_id for d in inventory.devices]
        problem = check_cdi(devices)
        if problem is None:
            return Check("cdi", "GPU access (CDI)", "ok", f"nvidia.com/gpu={','.join(devices)} declared")
        return Check("cdi", "GPU access (CDI)", "fail", problem.message, problem.fix, "launch")

    def _hub_row(self) -> Check:
        try:
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
        status: CheckStatus = "ok" if free >= 20 * 1024**3 else "warn"
        hint = None if status == "ok" else "free some space, or point the repository elsewhere"
        return Check("disk", "Disk", status, f"{format_bytes(free)} free at {path}", hint)

    # -- models -------------------------------------------------------------------------------
    def _candidate(self, hit: hub.HubSearchResult, inventory: GpuInventory | None) -> ModelCandidate:
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
        """The Hub's most downloaded models; the built-in catalog when the Hub cannot be reached."""
        try:
            return self.search_models("", inventory, limit=12)
        except (hub.HubUnreachable, hub.OfflineNotCached):
            return self.catalog_models(inventory)

    def search_models(self, query: str, inventory: GpuInventory | None, *, limit: int = 20) -> list[ModelCandidate]:
        return [self._candidate(h, inventory) for h in hub.search_models(query, limit=limit)]

    def model_details(self, repo_id: str) -> ModelDetails:
        try:
            model = self._reader.lookup(repo_id)
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
    def session(self, inventory: GpuInventory) -> AddSession:
        """The add session for this repository on `inventory`: one per inventory the wizard read,
        so the running models are asked of podman once and each Hub model is looked up once."""
        from wizard.session import AddSession

        with self._lock:
            if self._session is None or self._session.inventory is not inventory:
                self._session = AddSession(self.repository_path(), inventory, reader=self._reader)
            return self._session

    def plan(
        self,
        inventory: GpuInventory,
        choices: Sequence[ModelChoice],
        existing: Sequence[ExistingModel] = (),  # the repository itself is the source of truth
        *,
        reserve_bytes: int = 0,
    ) -> PlanView:
        """The joint plan, named by the core's one rule (`ModelChoice.name` None: resume an
        unfinished add of the same source, refuse a second copy of a finished one, else derive)."""
        from wizard.add_flow import AddRequest

        requests = [AddRequest(c.repo_id, c.name, c.max_model_len, c.min_concurrency, c.revision) for c in choices]
        proposal = self.session(inventory).propose(
            requests, refuse=False, check_disk=False, reserve_bytes=reserve_bytes
        )
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
        return PlanView(proposal.plans, devices, proposal.fits, raw=proposal, names=proposal.names)

    def _planned(self, plan: PlanView) -> tuple[AddSession, AddProposal]:
        if plan.raw is None or self._session is None:
            raise ModelwizError("nothing is planned yet", hint="plan the models first")
        return self._session, plan.raw

    # -- download -----------------------------------------------------------------------------
    def disk_check(self, plan: PlanView) -> DiskCheck:
        from wizard.add_flow import bytes_to_download

        session, proposal = self._planned(plan)
        target = self.repository_path()
        needed = bytes_to_download(session.repo, proposal.new)
        return DiskCheck(path=target, needed_bytes=needed or 0, free_bytes=free_bytes_at(target))

    def download(
        self,
        plan: PlanView,
        choice: ModelChoice,
        *,
        on_progress: Callable[[ProgressEvent], None],
        cancel: threading.Event,
    ) -> None:
        """Record the model as downloading, fetch its planned commit into the repository, write
        its files (with the plan's budget changes, applied before the first byte moves)."""
        session, proposal = self._planned(plan)
        name = plan.name_of(choice)
        if name is None:
            raise ModelwizError(f"{choice.repo_id} is not in the plan", hint="plan it first")
        with session.locked():
            session.fetch(proposal, name, on_progress=on_progress, cancel=cancel)

    # -- repository and launch ----------------------------------------------------------------
    def write_repository(self, plan: PlanView, choices: Sequence[ModelChoice]) -> None:
        """Write every file of the joint plan (the downloads are done: nothing is fetched again)."""
        session, proposal = self._planned(plan)
        with session.locked():
            session.write(proposal)
        remember_repository(self.repository_path())

    def launch(self, plan: PlanView, *, on_event: Callable[[LaunchEvent], None], cancel: threading.Event) -> Endpoints:
        from wizard.serve import ServeOptions

        session, proposal = self._planned(plan)
        names = tuple(n.plan.name for n in proposal.new)
        # A running server loads again the models whose budgets changed (and, by fingerprint,
        # any whose files changed since it loaded them).
        reload = tuple(c.new.name for c in proposal.changed)
        with _failed_model_reported(on_event):
            serving = session.launch(names, reload, self._serve_options or ServeOptions(), _reporter(on_event, cancel))
        return _endpoints(serving.spec)

    def generate_stream(self, endpoints: Endpoints, model: str, prompt: str) -> Iterator[str]:
        yield from self.open_chat(endpoints, model).send(prompt)

    def open_chat(self, endpoints: Endpoints, model: str) -> ChatSession:
        from wizard.chat_session import ChatSession, chat_target

        root = self.repository_path()
        target = chat_target(
            model,
            endpoints.http,
            openai=endpoints.openai,
            repository=root if root.is_dir() else None,
            mount_point=endpoints.mount_point,
            chat_model=endpoints.chat_model,
        )
        return ChatSession(model, target)

    # -- the home screen ----------------------------------------------------------------------
    def catalog_models(self, inventory: GpuInventory | None) -> list[ModelCandidate]:
        return [catalog_candidate(m, inventory) for m in load_catalog()]

    def server_status(self) -> ServerView:
        from wizard.serve import completions_only, server_status

        try:
            status = server_status(self.repository_path())
        except ModelwizError as error:
            return ServerView("unreachable", detail=error.one_line())
        if status is None or not status.exists:
            return ServerView("absent", detail="no server for this repository (or podman is not reachable)")
        if status.state != "running" or not status.url:
            return ServerView("stopped", status.name, status.image, detail=f"container {status.state}")
        models = tuple(ModelState(m.name, *serving_state(m.state, m.reason)) for m in status.models)
        ready = tuple(m.name for m in models if m.state == "ready")
        endpoints = Endpoints(
            http=status.url,
            grpc=status.grpc_address or "",
            metrics=status.metrics_url or "",
            models=ready,
            openai=status.openai_url,
            completions_only=completions_only(self.repository_path(), status, ready),
            mount_point=status.mount_point,
            chat_model=status.chat_model,
        )
        return ServerView(
            "running",
            status.name,
            status.image,
            endpoints=endpoints,
            lines=endpoint_lines(endpoints),
            models=models,
            detail=status.error or "",
        )

    def home_models(self, server: ServerView) -> tuple[HomeModel, ...]:
        if not self.repository_path().is_dir():
            return ()
        repo = self._open()
        served = {m.name: m for m in server.models}
        out = []
        for model in repo.models():
            if model.state == KEPT:
                continue  # weights `remove` kept: not a model (`status` lists them)
            entry = model.entry
            source = entry.source if entry else model.name
            plan = entry.plan if entry else None
            if model.state == DOWNLOADING and entry is not None:
                done = _folder_bytes(repo.weights_dir(entry))
                out.append(
                    HomeModel(model.name, source, "unfinished", "", plan, done, plan.weights_bytes if plan else None)
                )
            elif model.state in (READY, FOREIGN):
                now = served.get(model.name)
                if now is None or now.state == "waiting":
                    out.append(HomeModel(model.name, source, "stopped", "", plan))
                else:
                    out.append(HomeModel(model.name, source, now.state, now.detail, plan))
            else:
                out.append(HomeModel(model.name, source, "problem", "; ".join(model.problems) or model.state, plan))
        return tuple(out)

    def gpu_use(self, inventory: GpuInventory) -> tuple[GpuUse, ...]:
        """Planned: the memory vLLM may claim on each device (each engine's gpu_memory_utilization
        of the device's CUDA total). In use now: NVML's used memory, read again on each call."""
        plans = self._open().managed_plans() if self.repository_path().is_dir() else ()
        now = (
            {g.cdi_id: g.memory_used_bytes for g in load_inventory(None).devices} if inventory.source == "nvml" else {}
        )
        return tuple(
            GpuUse(
                device=g.cdi_id,
                label=f"GPU {g.cdi_id} · {g.name}",
                total=g.cuda_total_bytes,
                planned=sum(
                    round(p.gpu_memory_utilization * g.cuda_total_bytes) for p in plans if g.cdi_id in p.devices
                ),
                used_now=now.get(g.cdi_id),
            )
            for g in inventory.devices
        )

    def relaunch(self, *, on_event: Callable[[LaunchEvent], None], cancel: threading.Event) -> Endpoints:
        """`modelwiz up` for the repository (the same `start_server`, with this run's options)."""
        from wizard.serve import ServeOptions, driver_version, start_server

        with _failed_model_reported(on_event):
            serving = start_server(
                self.repository_path(),
                driver=driver_version(self.spec, lambda _note: None),
                options=self._serve_options or ServeOptions(),
                reporter=_reporter(on_event, cancel),
            )
        return _endpoints(serving.spec)

    def reload_model(self, name: str) -> None:
        from wizard.triton_http import TritonHttp, TritonHttpError

        server = self.server_status()
        if not server.running or server.endpoints is None:
            raise ModelwizError("the server is not running", hint="launch it first (`modelwiz up`)")
        try:
            TritonHttp(server.endpoints.http).load(name)
        except TritonHttpError as error:
            raise ModelwizError(f"{name} did not load: {error}", hint="read the server log for the reason") from None

    def remove_model(self, name: str, *, delete_weights: bool) -> tuple[str, ...]:
        """What `modelwiz remove NAME` does: take it out under the repository lock, then free
        its GPU memory when the server has it loaded."""
        from wizard.commands.remove import unload_from_server

        name = check_name(name)
        repo = Repository.open(self.repository_path())
        with repo.lock():
            notes = Repository.open(repo.root).remove_model(name, delete_weights=delete_weights)
        if unload_from_server(repo.root, name):
            notes = (*notes, f"unloaded {name} from the running server")
        return (*notes, f"removed {name} from {repo.root}")

    def _container_name(self) -> str:
        return self.server_status().name or DEFAULT_NAME

    def stop_server(self) -> bool:
        """What `modelwiz down` does, for this repository's container."""
        from wizard import launcher

        name = self._container_name()
        client = podman_conn.connect()
        try:
            return launcher.down(client, name)
        finally:
            client.close()

    def server_log(self, lines: int = LOG_LINES) -> tuple[str, ...]:
        from wizard import launcher

        name = self._container_name()
        client = podman_conn.connect(timeout=5)
        try:
            container = launcher.find_container(client, name)
            return () if container is None else tuple(launcher.log_tail(container, lines))
        finally:
            client.close()

    # -- before bytes move: launch readiness and logging in (the plan step's rows) --------------
    def launch_readiness(self, inventory: GpuInventory, plan: PlanView) -> tuple[Check, ...]:
        devices = sorted({d for m in plan.models if m.fits for d in m.devices})
        rows = [self._podman_row()]
        problem = check_cdi(devices) if devices else None
        if problem is None:
            rows.append(Check("cdi", "GPU access (CDI)", "ok", f"nvidia.com/gpu={','.join(devices)} declared"))
        else:
            rows.append(Check("cdi", "GPU access (CDI)", "fail", problem.message, problem.fix, "launch"))
        rows.append(self._image_here_row(inventory, podman_ok=rows[0].ok))
        return tuple(rows)

    def _image_here_row(self, inventory: GpuInventory, *, podman_ok: bool) -> Check:
        try:
            image = choose_image(None, inventory.driver_version, inventory.gpu_kind)
        except ModelwizError as error:
            return Check("image", "Triton image", "fail", error.message, error.hint, "launch")
        if not podman_ok:
            return Check("image", "Triton image", "warn", f"{image}: cannot tell whether it is here (no podman)")
        try:
            client = podman_conn.connect(timeout=5)
            try:
                here = bool(client.images.exists(image))
            finally:
                client.close()
        except Exception as error:  # noqa: BLE001 - a check that breaks is a row with its reason
            return _failed("image", "Triton image", error, None, "warn")
        if here:
            return Check("image", "Triton image", "ok", f"{image} is on this machine")
        return Check(
            "image",
            "Triton image",
            "warn",
            f"{image} is not on this machine: the launch pulls it first (several GB from nvcr.io)",
            "pull it now to check access: podman pull " + image,
        )

    def log_in(self, token: str) -> str:
        return hub.save_token(token)
