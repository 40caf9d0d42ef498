"""A faithful fake of `wizard.service.WizardService` for the wizard's tests, and the Pilot helpers
the screen tests share.

The fake uses the real GPU inventory code (`wizard.gpus.describe`) and the real naming code
(`wizard.naming`), returns the same dataclasses as `CoreService`, follows the core's naming rule
(a pick with no name resumes an unfinished add of its source, is refused when its source is
already in the repository, else gets a fresh name), raises the same error types (`NvmlError`,
`ModelwizError` with hints, `Cancelled`), and reports download and launch progress from a thread
of its own, as huggingface_hub and podman-py do.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from textual.app import App
from textual.pilot import Pilot
from textual.widgets import Input, OptionList, Static

from screens.machine import MachineScreen
from screens.models import ModelsScreen
from screens.plan import PlanScreen
from wizard.conversation import Conversation
from wizard.core_service import CoreService
from wizard.errors import Cancelled, ModelwizError, UsageError
from wizard.gpus import GpuInventory, NvmlError, describe
from wizard.hub import InvalidToken
from wizard.naming import derive_name, unique_name
from wizard.plan_types import InstanceGroup, ModelPlan
from wizard.progress import ProgressEvent
from wizard.service import (
    Access,
    Check,
    DeviceMemory,
    DiskCheck,
    Endpoints,
    ExistingModel,
    Gated,
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
    WizardService,
    endpoint_lines,
    quick_fit,
)
from wizard.units import GiB, MiB

SEED_GPUS = "L4"


@dataclass(frozen=True)
class FakeModel:
    repo_id: str
    weights_bytes: int
    downloads: int = 1000
    gated: Gated = False
    access: Access = "ok"
    max_position: int = 32768
    kv_per_token: int = 128 * 1024  # bytes per token, per GPU
    files: tuple[tuple[str, int], ...] = ()

    def file_list(self) -> tuple[tuple[str, int], ...]:
        if self.files:
            return self.files
        half = self.weights_bytes // 2
        return (
            ("config.json", 700),
            ("model-00001-of-00002.safetensors", half),
            ("model-00002-of-00002.safetensors", self.weights_bytes - half),
        )


CATALOG = (
    FakeModel("Qwen/Qwen2.5-7B-Instruct", 15 * GiB, downloads=9_000_000),
    FakeModel(
        "meta-llama/Llama-3.1-8B-Instruct", 16 * GiB, downloads=8_000_000, gated="manual", access="needs-request"
    ),
    FakeModel("mistralai/Mistral-7B-Instruct-v0.3", 14 * GiB, downloads=3_000_000),
    FakeModel("meta-llama/Llama-3.1-70B-Instruct", 140 * GiB, downloads=2_000_000, gated="manual"),
    FakeModel("Qwen/Qwen2.5-0.5B-Instruct", 1 * GiB, downloads=5_000_000, max_position=32768),
    FakeModel("deepseek-ai/DeepSeek-V3", 680 * GiB, downloads=1_000_000),
)


@dataclass
class FakeChat:
    """A conversation as wizard.chat_session.ChatSession keeps it (the real Conversation), with a canned
    reply. Each message sent is recorded in the service's calls as ("generate", model, text)."""

    model: str
    calls: list[tuple[object, ...]]
    conversation: Conversation = field(default_factory=Conversation)
    notes: tuple[str, ...] = ()
    stats: str | None = None
    reply: tuple[str, ...] = ("Triton ", "serves ", "models.")

    def send(self, text: str) -> Iterator[str]:
        self.conversation.ask(text)
        self.calls.append(("generate", self.model, text))
        yield from self.reply
        self.conversation.answer("".join(self.reply))
        self.stats = f"~{len(self.reply)} tokens in 0.0 s, ~0.0 tokens/s"

    def reset(self) -> None:
        self.conversation.reset()


@dataclass
class FakeService:
    """Scenario knobs are plain attributes; `calls` records what the UI asked for."""

    spec: str | None = "2xH100-80GB"
    nvml_error: NvmlError | None = None
    models: tuple[FakeModel, ...] = CATALOG
    existing: tuple[ExistingModel, ...] = ()
    disk_free: int = 2000 * GiB
    podman_ok: bool = True
    cdi_ok: bool = True
    image_here: bool = True
    logged_in: bool = True
    valid_token: str = "hf_valid_token"
    launch_error: ModelwizError | None = None
    download_error: ModelwizError | None = None
    file_permits: threading.Semaphore | None = None  # when set: each file waits for a permit
    repository: Path = Path("/tmp/modelwiz-fake-repo")
    calls: list[tuple[object, ...]] = field(default_factory=list)
    downloaded: dict[str, int] = field(default_factory=dict)  # repo_id -> bytes on disk (resume)
    # -- the server, for the home screen (see the block at the end of the class)
    server_running: bool = False
    serving: dict[str, ModelState] = field(default_factory=dict)  # name -> state in the server
    gpu_used: dict[str, int] | None = None  # CDI id -> bytes NVML reports in use; None: described GPUs
    log: tuple[str, ...] = ()
    reload_error: str | None = None  # the reason Triton gives when a load fails

    # -- helpers --------------------------------------------------------------------------------
    def model(self, repo_id: str) -> FakeModel:
        for m in self.models:
            if m.repo_id == repo_id:
                return m
        raise ModelwizError(
            f"{repo_id} was not found on the Hugging Face Hub",
            hint="check the spelling (owner/name), or log in if it is private",
        )

    # -- WizardService --------------------------------------------------------------------------------
    def repository_path(self) -> Path:
        return self.repository

    def existing_models(self) -> tuple[ExistingModel, ...]:
        self.calls.append(("existing_models",))
        return self.existing

    def load_inventory(self, spec: str | None) -> GpuInventory:
        self.calls.append(("load_inventory", spec))
        if spec:
            return describe(spec)
        if self.nvml_error is not None:
            raise self.nvml_error
        return describe("2xH100-80GB")

    def machine_checks(self, inventory: GpuInventory | None) -> Iterator[Check]:
        if self.podman_ok:
            yield Check("podman", "Podman", "ok", "podman 4.3.1 reachable")
        else:
            yield Check(
                "podman",
                "Podman",
                "fail",
                "cannot reach the podman service",
                "start it: systemctl --user enable --now podman.socket",
                "launch",
            )
        if self.logged_in:
            yield Check("hf-login", "Hugging Face", "ok", "logged in as tester (token file)")
        else:
            yield Check(
                "hf-login",
                "Hugging Face",
                "warn",
                "not logged in: gated models cannot be downloaded",
                "run `modelwiz login`",
            )
        yield Check(
            "disk",
            "Disk",
            "ok" if self.disk_free > 50 * GiB else "warn",
            f"{self.disk_free // GiB} GiB free at {self.repository}",
        )

    def _candidates(self, models: Sequence[FakeModel], inventory: GpuInventory | None) -> list[ModelCandidate]:
        out = []
        for m in models:
            fit, note = quick_fit(m.weights_bytes, inventory)
            out.append(
                ModelCandidate(m.repo_id, m.downloads, m.gated, m.weights_bytes // 2, m.weights_bytes, fit, note)
            )
        return out

    def popular_models(self, inventory: GpuInventory | None) -> list[ModelCandidate]:
        self.calls.append(("popular_models",))
        return self._candidates(sorted(self.models, key=lambda m: -m.downloads), inventory)

    def search_models(self, query: str, inventory: GpuInventory | None, *, limit: int = 20) -> list[ModelCandidate]:
        self.calls.append(("search_models", query))
        hits = [m for m in self.models if query.lower() in m.repo_id.lower()]
        return self._candidates(sorted(hits, key=lambda m: -m.downloads)[:limit], inventory)

    def model_details(self, repo_id: str) -> ModelDetails:
        self.calls.append(("model_details", repo_id))
        m = self.model(repo_id)
        access: Access = "ok"
        note = ""
        if m.gated and not self.logged_in:
            access, note = "needs-login", f"{repo_id} is gated: log in with `modelwiz login`"
        elif m.gated and m.access != "ok":
            access, note = m.access, f"{repo_id} is gated: accept its terms at https://huggingface.co/{repo_id} first"
        return ModelDetails(repo_id, "a" * 40, m.gated, access, note, m.weights_bytes, True)

    def names_for(self, choices: Sequence[ModelChoice]) -> dict[str, str]:
        """The core's naming rule (wizard.add_flow.resolve_requests), over `self.existing`."""
        taken = {e.name for e in self.existing}
        names: dict[str, str] = {}
        for c in choices:
            same = [e for e in self.existing if e.source == c.repo_id]
            if c.name is not None:
                entry = next((e for e in self.existing if e.name == c.name), None)
                if entry is not None and not (entry.source == c.repo_id and not entry.complete):
                    raise UsageError(f"the repository already has a model named {c.name!r}", hint="pick another name")
                if c.name in names.values():
                    raise UsageError(f"two models are named {c.name!r}", hint="pick another name")
                name = c.name
            elif any(not e.complete for e in same):
                name = next(e.name for e in same if not e.complete)
            elif same:
                raise UsageError(
                    f"{c.repo_id} is already in the repository as {same[0].name!r}",
                    hint="give a name to add another copy, or `modelwiz remove` it first",
                )
            else:
                name = unique_name(derive_name(c.repo_id), taken)
            taken.add(name)
            names[c.repo_id] = name
        return names

    def plan(
        self,
        inventory: GpuInventory,
        choices: Sequence[ModelChoice],
        existing: Sequence[ExistingModel] = (),
        *,
        reserve_bytes: int = 0,
    ) -> PlanView:
        """A small, honest planner: each model on the device with the most room, TP when needed."""
        self.calls.append(("plan", tuple(choices)))
        names = self.names_for(choices)
        devices = list(inventory.devices)
        used: dict[str, list[int]] = {g.cdi_id: [0, 0, 0] for g in devices}  # weights, kv, overhead
        plans: list[ModelPlan] = []
        for e in existing:
            if e.name in names.values():
                continue  # resumed: planned again below
            if e.plan is not None:
                plans.append(e.plan)
                for d in e.plan.devices:
                    share = e.plan.weights_bytes // max(1, e.plan.tensor_parallel_size)
                    used[d][0] += share
                    used[d][1] += e.plan.kv_cache_tokens * e.plan.kv_cache_bytes_per_token
                    used[d][2] += GiB
        for c in choices:
            m = self.model(c.repo_id)
            length = c.max_model_len or min(m.max_position, 32768)
            fits, reason = True, ""
            suggestions: tuple[str, ...] = ()
            order = sorted(devices, key=lambda g: g.cuda_total_bytes - sum(used[g.cdi_id]), reverse=True)

            def fewest_gpus(length: int, c: ModelChoice = c, m: FakeModel = m, order: list = order) -> int:
                # a power of two; > len(order) when nothing fits
                tp = 1
                while tp <= len(order):
                    room = [
                        int(g.cuda_total_bytes * 0.9) - sum(used[g.cdi_id]) - GiB - reserve_bytes for g in order[:tp]
                    ]
                    need_kv = length * c.min_concurrency * m.kv_per_token // tp
                    if min(room) >= m.weights_bytes // tp + need_kv:
                        break
                    tp *= 2
                return tp

            tp = fewest_gpus(length)
            while c.max_model_len is None and tp > len(order) and length > 1024:
                length //= 2  # auto: as the planner, the longest context that fits
                tp = fewest_gpus(length)
            if length > m.max_position:
                fits, reason = False, f"context {length} is longer than the model's {m.max_position}"
                suggestions = (f"set the context length to {m.max_position} or less",)
                tp = 1
            elif tp > len(order):
                fits, tp = False, 1
                reason = (
                    f"needs {(m.weights_bytes + length * c.min_concurrency * m.kv_per_token) // GiB} GiB; "
                    f"the GPUs have {sum(int(g.cuda_total_bytes * 0.9) for g in devices) // GiB} GiB"
                )
                shorter = length // 2
                while shorter > 1024 and fewest_gpus(shorter) > len(order):
                    shorter //= 2
                suggestions = ("use a quantized variant",)
                if fewest_gpus(shorter) <= len(order):  # worded as the planner words it
                    suggestions = (f"a shorter context: --max-model-len {shorter} fits", *suggestions)
            chosen = order[:tp]
            kv_tokens = 0
            if fits:
                least = min(int(g.cuda_total_bytes * 0.9) - sum(used[g.cdi_id]) - GiB - reserve_bytes for g in chosen)
                want = max(length * c.min_concurrency * m.kv_per_token // tp, length * m.kv_per_token * 4 // tp)
                kv_budget = min(least - m.weights_bytes // tp, want)
                kv_tokens = kv_budget // m.kv_per_token
                for g in chosen:
                    used[g.cdi_id][0] += m.weights_bytes // tp
                    used[g.cdi_id][1] += kv_budget
                    used[g.cdi_id][2] += GiB
                reason = f"weights {m.weights_bytes // GiB} GiB on {tp} GPU(s), KV cache for {kv_tokens} tokens"
            plans.append(
                ModelPlan(
                    model=c.repo_id,
                    name=names[c.repo_id],
                    fits=fits,
                    reason=reason,
                    tensor_parallel_size=tp,
                    gpu_memory_utilization=0.9,
                    max_model_len=length,
                    dtype="bfloat16",
                    instance_group=InstanceGroup("KIND_MODEL", 1, tuple(g.index for g in chosen)),
                    weights_bytes=m.weights_bytes,
                    kv_cache_bytes_per_token=m.kv_per_token,
                    kv_cache_tokens=max(0, kv_tokens),
                    max_concurrency=max(0.0, kv_tokens / length),
                    suggestions=suggestions,
                    devices=tuple(g.cdi_id for g in chosen) if fits else (),
                )
            )
        memory = []
        for g in devices:
            w, kv, ov = used[g.cdi_id]
            other = g.other_processes_bytes
            memory.append(
                DeviceMemory(
                    g.cdi_id,
                    f"GPU {g.cdi_id} · {g.name}",
                    g.cuda_total_bytes,
                    w,
                    kv,
                    ov,
                    other,
                    max(0, g.cuda_total_bytes - w - kv - ov - other),
                )
            )
        return PlanView(tuple(plans), tuple(memory), all(p.fits for p in plans), names=names)

    def disk_check(self, plan: PlanView) -> DiskCheck:
        needed = sum(self.model(repo_id).weights_bytes - self.downloaded.get(repo_id, 0) for repo_id in plan.names)
        return DiskCheck(self.repository, needed, self.disk_free)

    def download(
        self,
        plan: PlanView,
        choice: ModelChoice,
        *,
        on_progress: Callable[[ProgressEvent], None],
        cancel: threading.Event,
    ) -> None:
        self.calls.append(("download", choice.repo_id))
        m = self.model(choice.repo_id)
        self._record(plan, choice, complete=False)  # as the core's fetch: recorded before the first byte
        files = m.file_list()
        total = sum(size for _, size in files)
        errors: list[BaseException] = []

        def run() -> None:  # huggingface_hub reports from its own worker threads
            done = 0
            for i, (name, size) in enumerate(files):
                if self.file_permits is not None:
                    self.file_permits.acquire(timeout=5)
                if cancel.is_set():
                    self.downloaded[choice.repo_id] = done
                    errors.append(
                        Cancelled(
                            f"download of {choice.repo_id} cancelled",
                            hint="run modelwiz again to resume; what arrived is kept",
                        )
                    )
                    return
                if self.download_error is not None and i == 1:
                    errors.append(self.download_error)
                    return
                file_done = 0
                for part in (size // 2, size - size // 2):
                    done += part
                    file_done += part
                    on_progress(
                        ProgressEvent(
                            task=f"download {choice.repo_id}",
                            done_bytes=done,
                            total_bytes=total,
                            current=name,
                            files_done=i,
                            files_total=len(files),
                            rate_bytes_per_s=500 * MiB,
                            eta_s=(total - done) / (500 * MiB),
                            current_done_bytes=file_done,
                            current_total_bytes=size,
                        )
                    )
            self.downloaded[choice.repo_id] = total
            on_progress(
                ProgressEvent(
                    task=f"download {choice.repo_id}",
                    done_bytes=total,
                    total_bytes=total,
                    files_done=len(files),
                    files_total=len(files),
                    finished=True,
                )
            )

        thread = threading.Thread(target=run, name="fake-hf-download")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        self._record(plan, choice, complete=True)

    def _record(self, plan: PlanView, choice: ModelChoice, *, complete: bool) -> None:
        """The repository now holds the pick under the name the plan gave it."""
        name = plan.name_of(choice)
        assert name is not None, "downloading a pick the plan did not name"
        entry = ExistingModel(name, choice.repo_id, plan.model(name), choice.revision, complete)
        self.existing = (*(e for e in self.existing if e.name != name), entry)

    def write_repository(self, plan: PlanView, choices: Sequence[ModelChoice]) -> None:
        self.calls.append(("write_repository", tuple(plan.name_of(c) for c in choices)))

    def launch(self, plan: PlanView, *, on_event: Callable[[LaunchEvent], None], cancel: threading.Event) -> Endpoints:
        self.calls.append(("launch",))
        errors: list[BaseException] = []

        def run() -> None:
            total = 9 * GiB
            for step in range(1, 4):
                on_event(
                    PullProgress(
                        ProgressEvent(
                            "pull nvcr.io/nvidia/tritonserver:25.09-vllm-python-py3",
                            step * total // 3,
                            total,
                            current=f"layer {step}/3",
                        )
                    )
                )
            on_event(LogLine("I1127 02:00:00.000 server.cc:674] Started GRPCInferenceService at 0.0.0.0:8001"))
            for p in plan.models:
                on_event(ModelState(p.name, "loading"))
            if self.launch_error is not None:
                on_event(LogLine("E1127 02:00:05.000 model.py:312] torch.OutOfMemoryError: CUDA out of memory"))
                on_event(ModelState(plan.models[-1].name, "failed", "CUDA out of memory"))
                errors.append(self.launch_error)
                return
            for p in plan.models:
                on_event(LogLine(f"I1127 02:00:09.000 model_lifecycle.cc:849] successfully loaded '{p.name}'"))
                on_event(ModelState(p.name, "ready"))

        thread = threading.Thread(target=run, name="fake-launcher")
        thread.start()
        thread.join()
        if errors:
            raise errors[0]
        return self._serve(p.name for p in plan.models)

    def _serve(self, names: Iterable[str]) -> Endpoints:
        """The server is up with `names` ready (what a launch leaves behind)."""
        self.server_running = True
        for name in names:
            self.serving[name] = ModelState(name, "ready")
        return Endpoints(
            "http://127.0.0.1:8000", "127.0.0.1:8001", "http://127.0.0.1:8002/metrics", tuple(self.serving)
        )

    def launch_readiness(self, inventory: GpuInventory, plan: PlanView) -> tuple[Check, ...]:
        self.calls.append(("launch_readiness",))
        devices = sorted({d for m in plan.models if m.fits for d in m.devices})
        podman = next(c for c in self.machine_checks(inventory) if c.key == "podman")
        cdi = (
            Check("cdi", "GPU access (CDI)", "ok", f"nvidia.com/gpu={','.join(devices)} declared")
            if self.cdi_ok
            else Check(
                "cdi",
                "GPU access (CDI)",
                "fail",
                f"no CDI spec declares nvidia.com/gpu={','.join(devices)}",
                "run `sudo nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml`",
                "launch",
            )
        )
        image = "nvcr.io/nvidia/tritonserver:25.09-vllm-python-py3"
        pulled = (
            Check("image", "Triton image", "ok", f"{image} is on this machine")
            if self.image_here
            else Check("image", "Triton image", "warn", f"{image} is not on this machine: the launch pulls it first")
        )
        return (podman, cdi, pulled)

    def log_in(self, token: str) -> str:
        """As wizard.hub.save_token: refuses an empty token (UsageError) and one the Hub rejects."""
        self.calls.append(("log_in",))  # never the token itself
        if not token.strip():
            raise UsageError("no token given", hint="paste a token from https://huggingface.co/settings/tokens")
        if token.strip() != self.valid_token:
            raise InvalidToken()
        self.logged_in = True
        return "tester"

    def generate_stream(self, endpoints: Endpoints, model: str, prompt: str) -> Iterator[str]:
        yield from self.open_chat(endpoints, model).send(prompt)

    def open_chat(self, endpoints: Endpoints, model: str) -> FakeChat:
        """As ChatSession: refuses a model the server has not loaded."""
        if model not in endpoints.models:
            raise ModelwizError(
                f"model {model} is not loaded at {endpoints.http}", hint="check `modelwiz status`, then `modelwiz up`"
            )
        return FakeChat(model, self.calls)

    # -- the home screen (CoreService's block of the same name) ---------------------------------
    def catalog_models(self, inventory: GpuInventory | None) -> list[ModelCandidate]:
        return self._candidates(sorted(self.models, key=lambda m: -m.downloads), inventory)

    def server_status(self) -> ServerView:
        self.calls.append(("server_status",))
        if not self.server_running:
            return ServerView("absent", detail="no server for this repository (or podman is not reachable)")
        endpoints = Endpoints(
            "http://127.0.0.1:8000", "", "", tuple(n for n, s in self.serving.items() if s.state == "ready")
        )
        return ServerView(
            "running",
            "modelwiz-triton",
            "nvcr.io/nvidia/tritonserver:25.09-vllm-python-py3",
            endpoints=endpoints,
            lines=endpoint_lines(endpoints),
            models=tuple(self.serving.values()),
        )

    def home_models(self, server: ServerView) -> tuple[HomeModel, ...]:
        served = {m.name: m for m in server.models}
        out = []
        for e in sorted(self.existing, key=lambda e: e.name):
            if not e.complete:
                total = e.plan.weights_bytes if e.plan else None
                out.append(
                    HomeModel(e.name, e.source, "unfinished", "", e.plan, self.downloaded.get(e.source, 0), total)
                )
                continue
            now = served.get(e.name)
            if now is None or now.state == "waiting":
                out.append(HomeModel(e.name, e.source, "stopped", "", e.plan))
            else:
                out.append(HomeModel(e.name, e.source, now.state, now.detail, e.plan))
        return tuple(out)

    def gpu_use(self, inventory: GpuInventory) -> tuple[GpuUse, ...]:
        plans = [e.plan for e in self.existing if e.plan is not None]
        return tuple(
            GpuUse(
                g.cdi_id,
                f"GPU {g.cdi_id} · {g.name}",
                g.cuda_total_bytes,
                sum(round(p.gpu_memory_utilization * g.cuda_total_bytes) for p in plans if g.cdi_id in p.devices),
                None if self.gpu_used is None else self.gpu_used.get(g.cdi_id, 0),
            )
            for g in inventory.devices
        )

    def relaunch(self, *, on_event: Callable[[LaunchEvent], None], cancel: threading.Event) -> Endpoints:
        self.calls.append(("relaunch",))
        if not self.podman_ok:
            raise ModelwizError(
                "cannot reach the podman service", hint="start it: systemctl --user enable --now podman.socket"
            )
        names = [e.name for e in self.existing if e.complete]
        if not names:
            raise UsageError(
                f"no model in {self.repository} is ready to serve",
                hint="add one with `modelwiz add MODEL` (a model still downloading is never loaded)",
            )
        for name in names:
            on_event(ModelState(name, "loading"))
        if self.launch_error is not None:
            self.server_running = True
            self.serving[names[-1]] = ModelState(names[-1], "failed", "CUDA out of memory")
            on_event(ModelState(names[-1], "failed", "CUDA out of memory"))
            raise self.launch_error
        for name in names:
            on_event(ModelState(name, "ready"))
        return self._serve(names)

    def reload_model(self, name: str) -> None:
        self.calls.append(("reload", name))
        if not self.server_running:
            raise ModelwizError("the server is not running", hint="launch it first (`modelwiz up`)")
        if self.reload_error is not None:
            self.serving[name] = ModelState(name, "failed", self.reload_error)
            raise ModelwizError(f"{name} did not load: {self.reload_error}", hint="read the server log for the reason")
        self.serving[name] = ModelState(name, "ready")

    def remove_model(self, name: str, *, delete_weights: bool) -> tuple[str, ...]:
        self.calls.append(("remove", name, delete_weights))
        if not any(e.name == name for e in self.existing):
            raise UsageError(f"no model {name!r} in {self.repository}", hint="see `modelwiz status` for the names")
        self.existing = tuple(e for e in self.existing if e.name != name)
        notes: tuple[str, ...] = ()
        if self.serving.pop(name, None) is not None:
            notes = (f"unloaded {name} from the running server",)
        return (*notes, f"removed {name} from {self.repository}")

    def stop_server(self) -> bool:
        self.calls.append(("stop",))
        was = self.server_running
        self.server_running = False
        self.serving.clear()
        return was

    def server_log(self, lines: int) -> tuple[str, ...]:
        return self.log[-lines:] if self.server_running else ()


def existing_llama_plan() -> ExistingModel:
    plan = ModelPlan(
        model="Qwen/Qwen2.5-7B-Instruct",
        name="qwen2.5-7b-instruct",
        fits=True,
        reason="already placed",
        tensor_parallel_size=1,
        gpu_memory_utilization=0.45,
        max_model_len=32768,
        dtype="bfloat16",
        instance_group=InstanceGroup("KIND_MODEL", 1, (0,)),
        weights_bytes=15 * GiB,
        kv_cache_bytes_per_token=128 * 1024,
        kv_cache_tokens=100_000,
        max_concurrency=3.0,
        devices=("0",),
    )
    return ExistingModel("qwen2.5-7b-instruct", "Qwen/Qwen2.5-7B-Instruct", plan, "b" * 40)


def unfinished(model: ExistingModel) -> ExistingModel:
    """`model` as an add that stopped before its download finished."""
    return replace(model, complete=False)


def seeded_repository(root: Path, *, finished: bool) -> None:
    """`org/tiny` (a fake-Hub model) added to `root` through the real core on described GPUs:
    finished, or stopped by a cancel before its download (the manifest keeps an unfinished add)."""
    service = CoreService(spec=SEED_GPUS, repository=root)
    choice = ModelChoice("org/tiny")
    plan = service.plan(service.load_inventory(SEED_GPUS), [choice])
    cancel = threading.Event()
    if not finished:
        cancel.set()
    try:
        service.download(plan, choice, on_progress=lambda _event: None, cancel=cancel)
    except Cancelled:
        assert not finished
    if finished:
        service.write_repository(plan, [choice])


def _conforms(service: FakeService) -> WizardService:
    return service  # mypy checks that the fake implements the protocol


@pytest.fixture
def fake_backend(tmp_path: Path) -> FakeService:
    return FakeService(repository=tmp_path / "models")


# ---------------------------------------------------------------------------------------------
# Scripted questionary (harlequin's FakePrompt pattern), for the plain wizard


class FakePrompt:
    def __init__(self, answer: object) -> None:
        self.answer = answer

    def ask(self) -> object:
        return self.answer


class ScriptedQuestionary:
    """Stands in for the questionary module: answers come from a script, in order, and each
    prompt's message must start with what the script expects."""

    def __init__(self, script: Sequence[tuple[str, str, object]]) -> None:
        self.script = list(script)
        self.asked: list[tuple[str, str, object]] = []

    def _next(self, kind: str, message: str, **kwargs: Any) -> FakePrompt:
        self.asked.append((kind, message, kwargs.get("choices")))
        assert self.script, f"unexpected prompt: {message}"
        expect_kind, expect, answer = self.script.pop(0)
        assert kind == expect_kind and message.startswith(expect), (kind, message)
        if callable(answer):
            answer = answer(kwargs.get("choices"))
        if kind == "select":  # as questionary: only an offered choice can be picked
            assert answer in kwargs["choices"], f"{answer!r} is not offered: {kwargs['choices']}"
        validate = kwargs.get("validate")
        if validate is not None and answer is not None:
            assert validate(answer) is True, f"scripted answer {answer!r} fails validation"
        return FakePrompt(answer)

    def text(self, message: str, **kwargs: Any) -> FakePrompt:
        return self._next("text", message, **kwargs)

    def select(self, message: str, **kwargs: Any) -> FakePrompt:
        return self._next("select", message, **kwargs)

    def confirm(self, message: str, **kwargs: Any) -> FakePrompt:
        return self._next("confirm", message, **kwargs)


def first_matching(fragment: str) -> Callable[[Sequence[str]], str]:
    """A scripted answer: the first choice that contains `fragment`."""
    return lambda choices: next(c for c in choices if fragment in c)


# ---------------------------------------------------------------------------------------------
# Pilot helpers

SIZE = (100, 30)
TIMEOUT_S = 20.0


async def wait_for(pilot: Pilot[Any], predicate: Callable[[], object], *, groups: Sequence[str] = ()) -> None:
    """Until `predicate()` holds: first let the workers of `groups` finish (the screen's thread
    workers: "machine", "search", "lookup", "plan", ...) and their messages be handled, then look."""
    deadline = time.monotonic() + TIMEOUT_S
    while True:
        running = [w for w in pilot.app.workers if w.group in groups and w.is_running]
        if running:
            await pilot.app.workers.wait_for_complete(running)
        await pilot.pause()
        if predicate():
            return
        if time.monotonic() > deadline:
            raise AssertionError("condition not reached")
        await pilot.pause(0.02)


def screen_name(app: object) -> str:
    return type(app.screen).__name__  # type: ignore[attr-defined]


def text_of(app: object, selector: str) -> str:
    return str(app.screen.query_one(selector, Static).render())  # type: ignore[attr-defined]


def machine_ready(app: App[Any]) -> bool:
    return isinstance(app.screen, MachineScreen) and app.screen.checks_done


def models_ready(app: App[Any]) -> bool:
    return isinstance(app.screen, ModelsScreen) and bool(app.screen.results)


def home_ready(app: App[Any]) -> bool:
    """The home screen is up and its first look (server, models, GPUs) has landed."""
    return screen_name(app) == "HomeScreen" and bool(app.screen.refreshed)  # type: ignore[attr-defined]


async def home_to_models(pilot: Pilot[Any]) -> None:
    """A re-run: from the home screen, `a` (add models) opens the model list."""
    await wait_for(pilot, lambda: home_ready(pilot.app), groups=["home-poll"])
    await pilot.press("a")
    await wait_for(pilot, lambda: models_ready(pilot.app), groups=["search"])


def plan_ready(app: App[Any]) -> bool:
    return isinstance(app.screen, PlanScreen) and app.screen.plan is not None


async def to_models(pilot: Pilot[Any]) -> None:
    await wait_for(pilot, lambda: machine_ready(pilot.app), groups=["machine"])
    await pilot.click("#continue")
    await wait_for(pilot, lambda: models_ready(pilot.app), groups=["search"])


async def pick(pilot: Pilot[Any], query: str) -> None:
    screen = pilot.app.screen
    assert isinstance(screen, ModelsScreen)
    screen.query_one("#search", Input).value = query
    await wait_for(
        pilot,
        lambda: bool(screen.results) and all(query.lower() in c.repo_id.lower() for c in screen.results),
        groups=["search"],
    )
    results = screen.query_one("#results", OptionList)
    results.focus()
    exact = [i for i, c in enumerate(screen.results) if c.repo_id == query]
    results.highlighted = exact[0] if exact else 0  # the model named, else the first hit
    await pilot.press("enter")
    await wait_for(pilot, lambda: screen.pending is None, groups=["lookup"])


async def to_plan(pilot: Pilot[Any]) -> None:
    await pilot.click("#continue")
    await wait_for(pilot, lambda: plan_ready(pilot.app), groups=["plan"])


async def go_to_download(pilot: Pilot[Any]) -> None:
    app = pilot.app
    await to_models(pilot)
    await pick(pilot, "qwen2.5-7b")
    await to_plan(pilot)
    await pilot.click("#continue")
    await wait_for(pilot, lambda: screen_name(app) in ("DownloadScreen", "LaunchScreen", "DoneScreen"))


__all__ = [
    "CATALOG",
    "SIZE",
    "FakeModel",
    "FakePrompt",
    "FakeService",
    "ScriptedQuestionary",
    "existing_llama_plan",
    "fake_backend",
    "first_matching",
    "go_to_download",
    "home_ready",
    "home_to_models",
    "machine_ready",
    "models_ready",
    "pick",
    "plan_ready",
    "replace",
    "screen_name",
    "seeded_repository",
    "text_of",
    "to_models",
    "to_plan",
    "unfinished",
    "wait_for",
]
