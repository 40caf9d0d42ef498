"""What vLLM measured when each model loaded: kept in the repository manifest (per model, for
`status`) and in this machine's calibration (per GPU model and vLLM release, for the next plan).

The manifest entry's `measured` table holds the last load's figures per GPU of the engine:
`weights_bytes`, `kv_cache_tokens`, `max_concurrency` (what `status --json` shows), and
`kv_cache_bytes` and `gpu_memory_utilization` (the budget it was measured at) when known.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Collection, Mapping
from dataclasses import replace
from pathlib import Path

from wizard.add_flow import as_served
from wizard.calibration import Launch, launch_factor, record_launches
from wizard.errors import ModelwizError
from wizard.manifest import ManifestModel
from wizard.model_config import MODEL_JSON
from wizard.plan_types import ModelPlan
from wizard.repository import Repository, repository_lock
from wizard.vllm_log import ModelLoadLog, VllmLoadReport

CATCH_UP_LINES = 20_000  # of the server's log read again for loads the follower missed
CATCH_UP_TRIES = 3
CATCH_UP_WAIT_S = 0.5
SHOWN = ("weights_bytes", "kv_cache_tokens", "max_concurrency")  # `status --json`'s "measured"
LOW_KV_FRACTION = 0.9  # below this share of the planned KV cache, status warns


def measured_table(report: VllmLoadReport, plan: ModelPlan) -> dict[str, float]:
    """The manifest's `measured` table for one load (only what the log said)."""
    values: dict[str, float | None] = {
        "weights_bytes": report.weights_bytes,
        "kv_cache_tokens": report.kv_cache_tokens,
        "max_concurrency": report.max_concurrency,
        "kv_cache_bytes": report.kv_cache_bytes,
        "gpu_memory_utilization": plan.gpu_memory_utilization,
    }
    return {k: v for k, v in values.items() if v is not None}


def measured_json(entry: ManifestModel | None) -> dict[str, float | None] | None:
    """`{"weights_bytes", "kv_cache_tokens", "max_concurrency"}` of the last load, or None."""
    if entry is None or not entry.measured:
        return None
    return {key: entry.measured.get(key) for key in SHOWN}


def _same_budget(entry: ManifestModel) -> bool:
    util = entry.measured.get("gpu_memory_utilization")
    return util is None or round(util, 4) == round(entry.plan.gpu_memory_utilization, 4)


def measured_warning(entry: ManifestModel | None) -> str | None:
    """A warning when vLLM made less than 90 % of the KV cache the plan counts on."""
    if entry is None or not _same_budget(entry):
        return None
    tokens, planned = entry.measured.get("kv_cache_tokens"), entry.plan.kv_cache_tokens
    if tokens is None or planned <= 0 or tokens >= LOW_KV_FRACTION * planned:
        return None
    return (
        f"vLLM made {int(tokens):,} tokens of KV cache, {tokens / planned:.0%} of the {planned:,} planned: "
        "the next plan on this machine is calibrated from it (re-plan with `modelwiz add`, or lower --max-model-len)"
    )


def describe_measured(entry: ManifestModel) -> str:
    """`measured weights 14.99 GiB/GPU (plan 14.99 GiB), KV cache 158,656 tokens (plan 160,000), ...`."""
    from wizard.units import format_bytes

    measured, plan = entry.measured, entry.plan
    parts = []
    if "weights_bytes" in measured:
        planned = plan.extra.get("weights_bytes_per_gpu")
        also = f" (plan {format_bytes(int(planned))})" if planned else ""
        parts.append(f"weights {format_bytes(int(measured['weights_bytes']))}/GPU{also}")
    if "kv_cache_tokens" in measured:
        parts.append(f"KV cache {int(measured['kv_cache_tokens']):,} tokens (plan {plan.kv_cache_tokens:,})")
    if "max_concurrency" in measured:
        parts.append(f"{measured['max_concurrency']:g} full-length requests (plan {plan.max_concurrency:g})")
    text = "measured " + ", ".join(parts)
    if not _same_budget(entry):
        text += f" at utilization {measured['gpu_memory_utilization']:.2f}, not the plan's {plan.gpu_memory_utilization:.2f}"
    return text


def caught_up(
    reports: Mapping[str, VllmLoadReport], loaded: Collection[str], read_log: Callable[[], list[str]]
) -> dict[str, VllmLoadReport]:
    """`reports` from the log follower, completed from the log itself for the models it missed.

    The follower streams the log and is stopped as soon as the last model is ready, so the last
    lines can still be on their way; `read_log` reads the server's recent log once more (a few
    tries, briefly apart). The latest load of each model counts."""
    found = dict(reports)
    for attempt in range(CATCH_UP_TRIES):
        if not set(loaded) - set(found):
            break
        if attempt:
            time.sleep(CATCH_UP_WAIT_S)
        log = ModelLoadLog()
        for line in read_log():
            log.line(line)
        found = {**log.reports(), **reports}
    return found


def _launch(entry: ManifestModel, report: VllmLoadReport) -> Launch | None:
    """The calibration this load gives, when the plan says what it estimated."""
    extra = entry.plan.extra
    needed = ("gpu_name", "vllm_version", "kv_cache_bytes_per_gpu", "calibrated_bytes_per_gpu")
    if not all(extra.get(k) for k in needed):
        return None  # planned before modelwiz kept these
    measured = report.kv_cache_bytes
    if measured is None and report.kv_cache_tokens is not None:
        measured = report.kv_cache_tokens * entry.plan.kv_cache_bytes_per_token
    if measured is None:
        return None
    planned = int(extra["kv_cache_bytes_per_gpu"])
    factor = launch_factor(
        calibrated_bytes=int(extra["calibrated_bytes_per_gpu"]),
        prior_factor=float(extra.get("calibration_factor") or 1.0),
        planned_kv_bytes=planned,
        measured_kv_bytes=measured,
    )
    return Launch(str(extra["gpu_name"]), str(extra["vllm_version"]), entry.source, planned, measured, factor)


def record_measurements(repository: Path, reports: Mapping[str, VllmLoadReport], loaded: Collection[str]) -> list[str]:
    """Keep what the models loaded just now reported; returns warnings to show.

    A model whose model.json was edited by hand runs another budget than its plan: its figures
    are kept, but it does not calibrate."""
    found = {name: report for name, report in reports.items() if name in loaded}
    if not found:
        return []
    notes: list[str] = []
    launches: list[Launch] = []
    try:
        with repository_lock(repository):
            repo = Repository.open(repository)
            for name, report in sorted(found.items()):
                entry = repo.manifest.get(name)
                if entry is None:
                    continue  # not modelwiz's model
                # the budget it ran with: model.json's, which a hand edit may have changed
                entry = replace(entry, measured=measured_table(report, as_served(repo, entry.plan)))
                repo.record(entry)
                if repo.file_status(entry, MODEL_JSON) != "edited" and (launch := _launch(entry, report)):
                    launches.append(launch)
                warning = measured_warning(entry)
                if warning:
                    notes.append(f"{name}: {warning}")
    except ModelwizError as error:
        notes.append(f"what vLLM measured was not recorded: {error.message}")
    try:
        record_launches(launches)
    except OSError as error:
        notes.append(f"the calibration could not be saved: {error}")
    return notes
