"""The wizard's one flow, shared by the Textual screens (`screens/`) and the plain prompts
(`wizard.plain`): the order of the steps, where Back goes, what each step's answer changes in the
`WizardState`, what stops a launch, how typed numbers are read, and the "disk check, downloads,
write, launch" sequence. The UIs only ask and show; the decisions are here (and naming is the
core's: a pick is sent with no name, and `PlanView.names` says what the core called it).
"""

from __future__ import annotations

import contextlib
import enum
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from wizard.errors import ModelwizError, UsageError
from wizard.gpus import GpuInventory
from wizard.plan_render import KEEP_FREE_BYTES, suggested_context
from wizard.plan_types import ModelPlan
from wizard.service import (
    Check,
    Endpoints,
    ExistingModel,
    HomeModel,
    LaunchEvent,
    ModelChoice,
    ModelDetails,
    PlanView,
    ServerView,
    Stage,
    WizardService,
    blocking,
    curl_command,
    endpoint_lines,
)
from wizard.units import format_bytes
from wizard.wizard_state import WizardState

if TYPE_CHECKING:
    from wizard.progress import ProgressEvent

Step = Literal["machine", "models", "plan", "download", "launch", "done"]
STEPS: tuple[Step, ...] = ("machine", "models", "plan", "download", "launch", "done")
STEP_TITLES: dict[Step, str] = {
    "machine": "Machine",
    "models": "Models",
    "plan": "Plan",
    "download": "Download",
    "launch": "Launch",
    "done": "Done",
}

TOKENS_PER_K = 1024  # "128k" is the 131072 a config.json gives as max_position_embeddings
CONTEXT_HINT = "write a whole number of tokens: 8192, 8k, 32K or 131072"


# ---------------------------------------------------------------------------------------------
# What each step answers


class Back(enum.Enum):
    """The user asked to go back one step."""

    BACK = "back"


BACK = Back.BACK


@dataclass(frozen=True)
class MachineResult:
    inventory: GpuInventory
    checks: tuple[Check, ...]
    spec: str | None  # the --gpus text, or what the user described


@dataclass(frozen=True)
class ModelsResult:
    choices: tuple[ModelChoice, ...]


@dataclass(frozen=True)
class PlanResult:
    choices: tuple[ModelChoice, ...]
    plan: PlanView
    reserve_bytes: int = 0
    launch: bool = True  # False: download and write the repository only


@dataclass(frozen=True)
class DownloadResult:
    """Every picked model is on disk."""


@dataclass(frozen=True)
class LaunchResult:
    endpoints: Endpoints


@dataclass(frozen=True)
class DoneResult:
    """The user finished."""


StepResult = MachineResult | ModelsResult | PlanResult | DownloadResult | LaunchResult | DoneResult


def fold(state: WizardState, result: StepResult) -> WizardState:
    """The state once a step's answer is in."""
    if isinstance(result, MachineResult):
        return state.with_(inventory=result.inventory, checks=result.checks, spec=result.spec)
    if isinstance(result, ModelsResult):
        return state.with_(choices=result.choices)
    if isinstance(result, PlanResult):
        return state.with_(
            choices=result.choices, plan=result.plan, reserve_bytes=result.reserve_bytes, launch=result.launch
        )
    if isinstance(result, LaunchResult):
        return state.with_(endpoints=result.endpoints)
    return state


# ---------------------------------------------------------------------------------------------
# Step order


def opening(service: WizardService, state: WizardState) -> WizardState:
    """What the wizard knows before its first step: the repository's models and, on a re-run,
    the GPUs (when they cannot be read, the machine step says why)."""
    state = state.with_(existing=tuple(service.existing_models()))
    if state.existing:
        with contextlib.suppress(ModelwizError):
            state = state.with_(inventory=service.load_inventory(state.spec))
    return state


def first_step(state: WizardState) -> Step:
    """A re-run (models in the repository, GPUs known) opens on the model list."""
    return "models" if state.existing and state.inventory is not None else "machine"


def advance(state: WizardState, step: Step, answer: StepResult | Back) -> tuple[WizardState, Step | None]:
    """The state and the step after `step` answered; None when the wizard is done."""
    if isinstance(answer, Back):
        return state, step_before(step) or STEPS[0]
    if nothing_new(state, answer):
        return fold(state, answer), None
    state = fold(state, answer)
    if step == "download" and not state.launch:
        return state, None  # download only: the repository is written, `modelwiz up` launches it
    return state, step_after(step)


def nothing_new(state: WizardState, answer: StepResult) -> bool:
    """A re-run's model step answered with no new model: there is nothing to plan or download
    (the repository's models are launched, reloaded and removed from the home screen, or with
    `modelwiz up`), so the guided steps end there instead of planning nothing."""
    return isinstance(answer, ModelsResult) and not answer.choices and bool(state.existing)


def step_after(step: Step) -> Step | None:
    """The next step, or None when `step` is the last."""
    index = STEPS.index(step)
    return STEPS[index + 1] if index + 1 < len(STEPS) else None


def step_before(step: Step) -> Step | None:
    """Where Back goes; None means leaving the wizard. Back from the launch is the plan: the
    downloads are done, and the plan is where a failed launch is fixed."""
    if step == "launch":
        return "plan"
    index = STEPS.index(step)
    return STEPS[index - 1] if index else None


# ---------------------------------------------------------------------------------------------
# Picking and editing


def pick(details: ModelDetails, choices: Sequence[ModelChoice]) -> ModelChoice:
    """The choice for a looked-up model. Raises ModelwizError with the reason when it cannot be
    picked (no access, an architecture vLLM does not serve, already picked)."""
    if not details.pickable:
        raise ModelwizError(details.access_note or details.note or f"{details.repo_id} cannot be used")
    if already_picked(details.repo_id, choices):
        raise UsageError(f"{details.repo_id} is already picked")
    return ModelChoice(details.repo_id, revision=details.revision)


def already_picked(repo_id: str, choices: Sequence[ModelChoice]) -> bool:
    return any(c.repo_id == repo_id for c in choices)


def existing_line(model: ExistingModel) -> str:
    """A model already in the repository, as the model step lists it."""
    line = f"{model.name}  ({model.source})"
    return line if model.complete else f"{line}  unfinished: pick it again to resume"


def parse_context_length(text: str) -> int | None:
    """`8192`, `8k`, `32K`, `131072`, `128k`; empty means "the longest that fits" (None)."""
    value = text.strip().lower().replace("_", "").replace(",", "")
    if not value:
        return None
    return _tokens(value, text)


def parse_concurrency(text: str) -> int:
    """How many full-length requests at once: a whole number above 0."""
    value = text.strip()
    if not value.isdigit() or int(value) <= 0:
        raise UsageError(
            f"{text.strip() or 'nothing'!r} is not a number of requests", hint="enter a whole number above 0"
        )
    return int(value)


def _tokens(value: str, text: str) -> int:
    factor = 1
    if value.endswith("k"):
        factor, value = TOKENS_PER_K, value[:-1]
    if not value.isdigit() or int(value) <= 0:
        raise UsageError(f"{text.strip()!r} is not a context length", hint=CONTEXT_HINT)
    return int(value) * factor


def with_settings(
    choices: Sequence[ModelChoice], index: int, *, max_model_len: int | None, min_concurrency: int
) -> tuple[ModelChoice, ...]:
    out = list(choices)
    c = out[index]
    out[index] = ModelChoice(c.repo_id, c.name, c.revision, max_model_len, min_concurrency)
    return tuple(out)


def with_name(choices: Sequence[ModelChoice], index: int, name: str | None) -> tuple[ModelChoice, ...]:
    """The user typed a name for a pick (empty: let the core name it)."""
    out = list(choices)
    c = out[index]
    out[index] = ModelChoice(c.repo_id, (name or "").strip() or None, c.revision, c.max_model_len, c.min_concurrency)
    return tuple(out)


def can_go_on(plan: PlanView | None, choices: Sequence[ModelChoice], state: WizardState) -> bool:
    """The plan can be downloaded and launched: it fits, and there is something to run."""
    return plan is not None and plan.fits and bool(choices or state.existing)


def launch_blocked(rows: Sequence[Check]) -> bool:
    """A "before launch" row (`WizardService.launch_readiness`) stops the launch: the plan step
    then offers "download only" (the repository is written; `modelwiz up` launches it later)."""
    return any(r.status == "fail" and r.blocks == "launch" for r in rows)


def context_fix(plan: PlanView, choices: Sequence[ModelChoice]) -> tuple[int, int] | None:
    """The plan's one-key "use the context that fits": (index of the first pick that does not fit,
    the context length the planner suggests for it), or None when every pick fits."""
    for index, choice in enumerate(choices):
        model = plan.model(plan.name_of(choice) or choice.repo_id)
        if model is None or model.fits:
            continue
        length = suggested_context(model)
        if length is not None:
            return index, length
    return None


def use_context(choices: Sequence[ModelChoice], fix: tuple[int, int]) -> tuple[ModelChoice, ...]:
    """The picks with `context_fix`'s length taken (the pick's concurrency kept)."""
    index, length = fix
    return with_settings(choices, index, max_model_len=length, min_concurrency=choices[index].min_concurrency)


def toggled_reserve(reserve_bytes: int) -> int:
    """The plan's "keep memory free for later models" toggle: keep `KEEP_FREE_BYTES` on each GPU,
    or (pressed again) give that memory back to the planned models."""
    return 0 if reserve_bytes else KEEP_FREE_BYTES


# ---------------------------------------------------------------------------------------------
# Downloads, then write and launch


def download_all(
    service: WizardService,
    state: WizardState,
    *,
    on_progress: Callable[[int, ProgressEvent], object],
    cancel: threading.Event,
) -> None:
    """Check the machine and the disk, then fetch each pick in order (`on_progress` gets the
    pick's index). Raises ModelwizError when a failed check stops downloads or the disk is too
    small (before any byte moves), and wizard.errors.Cancelled when `cancel` is set."""
    choices, plan = state.choices, state.plan
    if not choices or plan is None:
        return
    check_stage(state.checks, "download")
    disk = service.disk_check(plan)
    if not disk.ok:
        raise ModelwizError(
            f"not enough disk space: {disk.explain()}",
            hint=f"free some space in {disk.path} (or use another model repository), then download again",
        )
    for index, choice in enumerate(choices):

        def report(event: ProgressEvent, index: int = index) -> None:
            on_progress(index, event)

        service.download(plan, choice, on_progress=report, cancel=cancel)
    if not state.launch:
        service.write_repository(plan, choices)  # ready for `modelwiz up` once the launch can run


def check_stage(checks: Sequence[Check], stage: Stage) -> None:
    """Raise ModelwizError when a failed machine check stops `stage` ("download" or "launch")."""
    stopping = blocking(checks, stage)
    if stopping:
        problems = "; ".join(f"{c.title}: {c.summary}" for c in stopping)
        raise ModelwizError(
            f"cannot {stage}: {problems}", hint=stopping[0].hint or "fix the machine check, then run modelwiz again"
        )


def write_and_launch(
    service: WizardService,
    state: WizardState,
    *,
    on_event: Callable[[LaunchEvent], object],
    cancel: threading.Event,
) -> Endpoints:
    """Refuse when a machine check stops the launch; else write the repository and start Triton."""
    if state.plan is None:
        raise ModelwizError("there is no plan to launch", hint="go back to the plan step")
    check_stage(state.checks, "launch")
    service.write_repository(state.plan, state.choices)

    def report(event: LaunchEvent) -> None:
        on_event(event)

    return service.launch(state.plan, on_event=report, cancel=cancel)


def plan_for(
    service: WizardService, state: WizardState, choices: Sequence[ModelChoice], *, reserve_bytes: int | None = None
) -> PlanView:
    """The core's plan for `choices` with the repository's models, on the state's GPUs, keeping
    `reserve_bytes` (None: the state's) free on each GPU."""
    if state.inventory is None:
        raise ModelwizError("there are no GPUs to plan for", hint="go back to the machine step and describe them")
    reserve = state.reserve_bytes if reserve_bytes is None else reserve_bytes
    return service.plan(state.inventory, choices, state.existing, reserve_bytes=reserve)


# ---------------------------------------------------------------------------------------------
# The home screen: a re-run opens on it (the repository has models); the guided steps start
# from it and come back to it.

HomeAction = Literal["add", "resume", "quit"]


@dataclass(frozen=True)
class HomeResult:
    """What the home screen hands to the flow: start the guided steps, or leave."""

    action: HomeAction
    choices: tuple[ModelChoice, ...] = ()  # resume: the unfinished adds, sent with no name


def opens_home(state: WizardState) -> bool:
    """A run over a repository that has models opens on the home screen; a first run on the steps."""
    return bool(state.existing)


def after_home(state: WizardState, result: HomeResult) -> tuple[WizardState, Step | None]:
    """The state and the guided step a home action starts; None: leave the wizard.

    Adding starts at the model list; resuming goes straight to the plan with the unfinished
    add's source (the core resumes it under its name, keeping what is on disk). Without GPUs
    known (NVML failed), both start at the machine step, which says why."""
    if result.action == "quit":
        return state, None
    state = state.with_(choices=result.choices, plan=None, endpoints=None)
    if state.inventory is None:
        return state, "machine"
    return state, ("plan" if result.action == "resume" else "models")


def first_look(existing: Sequence[ExistingModel]) -> tuple[HomeModel, ...]:
    """The home screen's rows before its first look at the server: what the manifest says."""
    return tuple(HomeModel(e.name, e.source, "checking" if e.complete else "unfinished", "", e.plan) for e in existing)


def resume_choice(model: HomeModel) -> HomeResult:
    """Resume an unfinished add: its source again, with no name (the core's rule resumes it)."""
    if model.state != "unfinished":
        raise UsageError(f"{model.name} is not an unfinished download", hint="pick a row marked unfinished")
    return HomeResult("resume", (ModelChoice(model.source),))


def goes_home(entry: Step | None, step: Step, answer: StepResult | Back) -> bool:
    """Back returns to the home screen from the step the home screen started (`entry`), and from
    the launch: the picks are in the repository by then, so the home screen is where they are
    relaunched (after a fix), their log read, or they are removed; planning them again as new
    picks would only be refused as duplicates."""
    return isinstance(answer, Back) and (step == entry or step == "launch")


def remove_questions(model: HomeModel) -> tuple[str, str]:
    """What both UIs ask before a model leaves the repository: whether it goes, then whether its
    weights go too (as `modelwiz remove` asks; kept, they let it be added again without a download)."""
    size = model.bytes_done if model.state == "unfinished" else (model.plan.weights_bytes if model.plan else None)
    weights = f"its weights ({format_bytes(size)})" if size else "its weights"
    return (
        f"Remove {model.name} from the repository (and unload it from the server)?",
        f"Delete {weights} too? Kept, they let it be added again without a download.",
    )


def plan_line(plan: ModelPlan | None) -> str:
    """A model's plan in one line: tensor parallel, context, memory share, concurrency."""
    if plan is None:
        return "not planned by modelwiz"
    return (
        f"tp {plan.tensor_parallel_size} · {plan.max_model_len:,} tokens · "
        f"util {plan.gpu_memory_utilization:.2f} · {plan.max_concurrency:.1f} at once"
    )


def exit_summary(server: ServerView | None, endpoints: Endpoints | None) -> str:
    """What the wizard prints on the normal screen as it leaves: where the server answers, a
    request to try, and the commands for later. `server` is the home screen's last look;
    `endpoints` what a launch in this run returned."""
    lines: list[str] = []
    if endpoints is None and server is not None and server.running:
        endpoints = server.endpoints
    if endpoints is None:
        lines.append("The server is not running: `modelwiz up` starts it.")
        lines.append("  modelwiz status    the models and their plans")
        return "\n".join(lines) + "\n"
    name = server.name if server is not None and server.name else None
    lines.append("Triton is running" + (f" as {name}" if name else "") + ":")
    shown = server.lines if server is not None and server.running and server.lines else endpoint_lines(endpoints)
    width = max(len(label) for label, _ in shown)
    lines.extend(f"  {label:<{width}}  {url}" for label, url in shown)
    model = endpoints.models[0] if endpoints.models else None
    if model:
        lines.append("Try it:")
        lines.append(f"  {curl_command(endpoints, model)}")
        lines.append(f"  modelwiz chat {model}")
    lines.append("  modelwiz status    the models and the server")
    lines.append("  modelwiz down      stop the server")
    return "\n".join(lines) + "\n"
