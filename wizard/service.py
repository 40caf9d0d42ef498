"""The one boundary between the wizard's UIs (Textual in `screens/`, prompts in `wizard.plain`) and the core.

Both UIs talk to a `WizardService` and nothing else: they never import the Hub, planner, download,
repository or launcher modules themselves. What crosses the boundary is plain, frozen dataclasses
(below) plus the core's own `GpuInventory`, `ModelPlan` and `ProgressEvent`. Errors cross as
`wizard.errors.ModelwizError` subclasses (with a `hint`), `wizard.gpus.NvmlError` among them.

`CoreService` implements the protocol over the core modules, imported lazily inside each method
so that the first screen paints before huggingface_hub, podman or protobuf are loaded. Tests use
`tests/fixtures_screens.FakeService`, which returns the same dataclasses and raises the same errors.

Every method may block (network, disk, containers): UIs call them from worker threads.
"""

from __future__ import annotations

import shutil
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal, Protocol

from wizard.textbar import MemoryPart
from wizard.units import format_bytes

if TYPE_CHECKING:
    from wizard.add_flow import AddProposal
    from wizard.gpus import GpuInventory
    from wizard.plan_types import ModelPlan
    from wizard.progress import ProgressEvent


# ---------------------------------------------------------------------------------------------
# What crosses the boundary

CheckStatus = Literal["ok", "warn", "fail"]
Stage = Literal["download", "launch"]  # the steps a failed check can stop, in order
STAGES: tuple[Stage, ...] = ("download", "launch")
Fit = Literal["fits", "split", "no", "unknown"]
Access = Literal["ok", "needs-login", "needs-request"]
ServingState = Literal["waiting", "loading", "ready", "failed"]
Gated = bool | Literal["auto", "manual"]  # True when only "gated" is known
ServerState = Literal["running", "stopped", "absent", "unreachable"]
# A repository model as the home screen shows it: serving (ready, loading), failed to load,
# stopped (complete, not served now), unfinished (an add whose download did not finish), a
# problem on disk (broken, missing, an interrupted removal), or checking (not looked at yet).
HomeState = Literal["ready", "loading", "failed", "stopped", "unfinished", "problem", "checking"]


@dataclass(frozen=True)
class Check:
    """One line of the machine check: what was looked at, what was found, and the fix."""

    key: str  # "podman", "cdi", "hf-login", "disk", ...
    title: str  # "Podman"
    status: CheckStatus
    summary: str  # "podman 4.3.1 reachable at unix:///run/podman/podman.sock"
    hint: str | None = None  # the fix, when status is not ok
    blocks: Stage | None = None  # the first step it stops

    @property
    def ok(self) -> bool:
        return self.status == "ok"


@dataclass(frozen=True)
class ModelCandidate:
    """A model the user could pick: a Hub search hit, a shortlist entry."""

    repo_id: str
    downloads: int | None = None
    gated: Gated = False  # False, or the Hub's "auto" / "manual"
    parameters: int | None = None
    weights_bytes: int | None = None  # size of the weights on the Hub, when known
    fit: Fit = "unknown"  # see quick_fit
    fit_note: str = ""  # "fits one H100 80GB", "needs 2 GPUs (TP 2)", "too big: 140 GiB > 160 GiB"


@dataclass(frozen=True)
class ModelDetails:
    """One looked-up model: enough to decide whether it can be picked."""

    repo_id: str
    revision: str | None  # the commit the download will pin
    gated: Gated = False
    access: Access = "ok"
    access_note: str = ""  # what to do about access, when not ok
    weights_bytes: int | None = None
    vllm_supported: bool | None = None
    note: str = ""  # e.g. the architecture vLLM does not know

    @property
    def pickable(self) -> bool:
        return self.access == "ok" and self.vllm_supported is not False


@dataclass(frozen=True)
class ExistingModel:
    """A model already in the Triton model repository (a re-run adds to these)."""

    name: str
    source: str  # Hub repo id or local path
    plan: ModelPlan | None = None
    revision: str | None = None
    complete: bool = True  # False: an add that did not finish (picking its source again resumes it)


@dataclass(frozen=True)
class ModelChoice:
    """What the user picked, with the settings they can edit on the plan screen.

    `name` is None unless the user typed one: the core names the model (and resumes an unfinished
    add of the same source, or refuses a second copy of a finished one) and `PlanView.names` says
    what it chose.
    """

    repo_id: str
    name: str | None = None
    revision: str | None = None
    max_model_len: int | None = None  # None: the planner picks the longest that fits
    min_concurrency: int = 1


DEVICE_PARTS: tuple[MemoryPart, ...] = ("weights", "kv_cache", "overhead", "other_processes", "free")


@dataclass(frozen=True)
class DeviceMemory:
    """How one device's memory is split by the plan (bytes). The parts add up to `total`."""

    device: str  # CDI id: "0", "1:0"
    label: str  # "GPU 0 · NVIDIA H100 80GB HBM3"
    total: int
    weights: int = 0
    kv_cache: int = 0
    overhead: int = 0
    other_processes: int = 0
    free: int = 0

    def parts(self) -> tuple[tuple[MemoryPart, int], ...]:
        """The parts in bar order (`DEVICE_PARTS`)."""
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

    models: tuple[ModelPlan, ...]
    devices: tuple[DeviceMemory, ...]
    fits: bool
    raw: AddProposal | None = field(default=None, compare=False, repr=False)  # the core's proposal, handed back
    names: dict[str, str] = field(default_factory=dict)  # repo id of each choice -> the name the core gave it

    def model(self, name: str) -> ModelPlan | None:
        return next((m for m in self.models if m.name == name), None)

    def name_of(self, choice: ModelChoice) -> str | None:
        """The model name `choice` is planned under (the user's, else the core's)."""
        return choice.name or self.names.get(choice.repo_id)


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

    progress: ProgressEvent


@dataclass(frozen=True)
class LogLine:
    """One line of the server's log."""

    text: str


@dataclass(frozen=True)
class ModelState:
    """A model's state in the running server."""

    name: str
    state: ServingState
    detail: str = ""  # for "failed": the log excerpt that says why


LaunchEvent = PullProgress | LogLine | ModelState


@dataclass(frozen=True)
class Endpoints:
    """Where the launched server answers."""

    http: str  # "http://127.0.0.1:8000"
    grpc: str  # "127.0.0.1:8001"
    metrics: str  # "http://127.0.0.1:8002/metrics"
    models: tuple[str, ...] = ()
    openai: str | None = None  # the OpenAI-compatible base URL ("http://127.0.0.1:9000/v1"); None: off
    completions_only: tuple[str, ...] = ()  # models that do not chat at /v1/chat/completions
    # What a chat needs to pick each model's own template: where the container sees the repository,
    # and the model whose tokenizer the OpenAI frontend uses. None: not known (chats go over /v2).
    mount_point: str | None = None
    chat_model: str | None = None


@dataclass(frozen=True)
class ServerView:
    """The repository's Triton server as the home screen shows it."""

    state: ServerState  # absent: no container; unreachable: podman cannot be asked
    name: str | None = None  # the container's name
    image: str | None = None
    endpoints: Endpoints | None = None  # where it answers, while running
    lines: tuple[tuple[str, str], ...] = ()  # (label, url) endpoint lines to show, best first
    models: tuple[ModelState, ...] = ()  # each model's state in the server
    detail: str = ""  # podman's status text, or why it could not be asked

    @property
    def running(self) -> bool:
        return self.state == "running"


@dataclass(frozen=True)
class HomeModel:
    """One model of the repository with its state now."""

    name: str
    source: str
    state: HomeState
    reason: str = ""  # why it failed, what is wrong on disk
    plan: ModelPlan | None = None
    bytes_done: int | None = None  # unfinished: the weights on disk so far
    bytes_total: int | None = None  # unfinished: the weights' size, when recorded


@dataclass(frozen=True)
class GpuUse:
    """One device: the memory the repository's plans give its engines, and what is in use now."""

    device: str  # CDI id
    label: str  # "GPU 0 · NVIDIA H100 80GB HBM3"
    total: int  # the memory CUDA sees (what gpu_memory_utilization is a fraction of)
    planned: int
    used_now: int | None = None  # NVML now; None for described GPUs


# ---------------------------------------------------------------------------------------------
# The protocol


class Chat(Protocol):
    """A conversation with one served model (wizard.chat_session.ChatSession)."""

    notes: tuple[str, ...]  # how it talks to the model, when that is not the OpenAI API (one line each)
    stats: str | None  # the last reply's "N tokens in S s, R tokens/s"

    def send(self, text: str) -> Iterator[str]:
        """The reply to `text` after the conversation so far, piece by piece (ModelwizError on failure)."""

    def reset(self) -> None:
        """Forget the conversation (the system message stays)."""


class WizardService(Protocol):
    """What the wizard needs from the core. Every method may block; call it from a worker."""

    spec: str | None  # the --gpus text the run started with, if any

    def repository_path(self) -> Path: ...

    def existing_models(self) -> tuple[ExistingModel, ...]: ...

    def load_inventory(self, spec: str | None) -> GpuInventory:
        """The GPUs (NVML, or `spec` when given). Raises NvmlError/UsageError."""

    def machine_checks(self, inventory: GpuInventory | None) -> Iterator[Check]:
        """Podman, CDI, Hugging Face login, disk: yielded one by one as each finishes."""

    def popular_models(self, inventory: GpuInventory | None) -> list[ModelCandidate]: ...

    def search_models(self, query: str, inventory: GpuInventory | None, *, limit: int = 20) -> list[ModelCandidate]: ...

    def model_details(self, repo_id: str) -> ModelDetails: ...

    def plan(
        self,
        inventory: GpuInventory,
        choices: Sequence[ModelChoice],
        existing: Sequence[ExistingModel] = (),
        *,
        reserve_bytes: int = 0,
    ) -> PlanView:
        """Plan the picks with the repository's models. Names picks that have none (`PlanView.names`):
        an unfinished add of the same source is resumed under its name; a finished one is refused
        (UsageError: give a name to add another copy). The GPUs' leftover memory goes to the models
        as KV cache, less `reserve_bytes` kept free on each GPU for models added later."""

    def disk_check(self, plan: PlanView) -> DiskCheck:
        """Room for what `plan`'s new models still need to fetch."""

    def download(
        self,
        plan: PlanView,
        choice: ModelChoice,
        *,
        on_progress: Callable[[ProgressEvent], None],
        cancel: threading.Event,
    ) -> None:
        """Fetch one pick of `plan` at the commit planned, under `PlanView.name_of(choice)`.

        Raises wizard.errors.Cancelled when `cancel` is set (done files stay)."""

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
        """The model's reply to `prompt` (a new conversation), piece by piece, as `open_chat` sends it."""

    def open_chat(self, endpoints: Endpoints, model: str) -> Chat:
        """A conversation with `model`: over the OpenAI API when it chats there with its own template,
        else with its own template rendered here over /v2, else raw text (its notes say so)."""

    # -- the home screen (a re-run) ------------------------------------------------------------
    def catalog_models(self, inventory: GpuInventory | None) -> list[ModelCandidate]:
        """The built-in catalog of popular models (no network): the model list's first answer."""

    def server_status(self) -> ServerView:
        """The repository's server now (never raises for podman being away: `unreachable`)."""

    def home_models(self, server: ServerView) -> tuple[HomeModel, ...]:
        """The repository's models, each with its state in `server` or on disk."""

    def gpu_use(self, inventory: GpuInventory) -> tuple[GpuUse, ...]:
        """Per device: planned by the repository's models, and in use now (NVML; None when described)."""

    def relaunch(self, *, on_event: Callable[[LaunchEvent], None], cancel: threading.Event) -> Endpoints:
        """Start the server for the repository as `modelwiz up` does (or load what is new)."""

    def reload_model(self, name: str) -> None:
        """Make the running server load `name` again."""

    def remove_model(self, name: str, *, delete_weights: bool) -> tuple[str, ...]:
        """Take `name` out of the repository as `modelwiz remove` does; the notes to show."""

    def stop_server(self) -> bool:
        """Stop and remove the server as `modelwiz down` does; False when there was none."""

    def server_log(self, lines: int) -> tuple[str, ...]:
        """The last `lines` of the server's log (empty when there is no server)."""

    # -- before bytes move: what would stop the launch, and logging in -------------------------
    def launch_readiness(self, inventory: GpuInventory, plan: PlanView) -> tuple[Check, ...]:
        """What the launch of `plan` needs, checked now: podman, GPU access (CDI) for the GPUs the
        plan uses (described GPUs too), the Triton image (here, or pulled at launch). A row with
        status "fail" and `blocks == "launch"` stops the launch."""

    def log_in(self, token: str) -> str:
        """Check `token` with the Hub and save it as `modelwiz login` does; returns the user name.
        Raises ModelwizError (InvalidToken, UsageError) when it cannot be used."""


# ---------------------------------------------------------------------------------------------
# Pure helpers both UIs use


def quick_fit(weights_bytes: int | None, inventory: GpuInventory | None) -> tuple[Fit, str]:
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
    """A copyable request, as `modelwiz up` prints it: to the OpenAI API when it runs (chat, or
    completions for a completions-only model), else to Triton's generate endpoint."""
    from wizard.endpoints import openai_curl
    from wizard.triton_http import curl_example

    if endpoints.openai:
        return openai_curl(endpoints.openai, model, chat=model not in endpoints.completions_only, prompt=prompt)
    return curl_example(endpoints.http, model, prompt=prompt)


def endpoint_lines(endpoints: Endpoints) -> tuple[tuple[str, str], ...]:
    """Where the server answers, as (label, url) lines, best first."""
    lines = (
        ("OpenAI API (/v1)", endpoints.openai or ""),
        ("Triton HTTP (/v2)", endpoints.http),
        ("gRPC", endpoints.grpc),
        ("metrics", endpoints.metrics),
    )
    return tuple((label, url) for label, url in lines if url)


def free_bytes_at(path: Path) -> int:
    """Free space on the file system that holds `path` (or would, once created)."""
    probe = Path(path).resolve()
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    return shutil.disk_usage(probe).free


def blocking(checks: Sequence[Check], step: Stage) -> tuple[Check, ...]:
    """The failed checks that stop `step` (or an earlier one)."""
    reach = STAGES.index(step)
    return tuple(c for c in checks if c.status == "fail" and c.blocks is not None and STAGES.index(c.blocks) <= reach)
