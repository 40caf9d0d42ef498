"""What launches on this machine measured, per GPU model and vLLM release, for the next plan.

Each time a model loads, vLLM reports the KV cache it could make (wizard/vllm_log.py). When that
differs from the plan, the planner's estimate of the terms vLLM measures while profiling
(activation peak and non-torch memory, wizard/vllm_memory.py) was off on this GPU with this vLLM:
the launch is kept as the factor that would have made the estimate match, bounded, and the next
plan on this machine scales those terms by the median factor of the launches like it.

The store is `calibration.json` in the user data folder (platformdirs user_data_dir), written
atomically under a lock; an unreadable file or entry is ignored (the plan is then uncalibrated).
"""

from __future__ import annotations

import fcntl
import json
import statistics
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from wizard.fsutil import atomic_write_text
from wizard.paths import data_dir

CALIBRATION_FILE = "calibration.json"
STORE_VERSION = 1
# Bounds on the factor: vLLM's measured terms ran from about half to 2-11x the estimate on public
# logs (vllm PR #17122: 5.6 GiB of non-KV overhead for Llama-3.1-8B on an L40S, V1 0.8.5); a
# launch that asks for more says something else went wrong, and is capped.
MIN_FACTOR = 0.5
MAX_FACTOR = 5.0
KEEP_PER_KEY = 20  # the latest launches kept per GPU model and vLLM release


@dataclass(frozen=True)
class Launch:
    """One model's load: the plan's KV pool per GPU and what vLLM made of it."""

    gpu: str  # the GPU model, as NVML names it
    vllm: str  # the vLLM release the plan was for, e.g. "0.19.0"
    model: str  # where the model came from (Hub repo id or folder)
    planned_kv_bytes: int
    measured_kv_bytes: int
    factor: float  # the scale that would have made the planned pool the measured one


@dataclass(frozen=True)
class Adjustment:
    factor: float
    launches: int


@dataclass(frozen=True)
class Calibration:
    launches: tuple[Launch, ...] = ()

    def adjustment(self, gpu: str, vllm: str) -> Adjustment | None:
        """The scale for this GPU model and vLLM release, from the launches like it (None: none yet)."""
        factors = [launch.factor for launch in self.launches if launch.gpu == gpu and launch.vllm == vllm]
        if not factors:
            return None
        return Adjustment(round(statistics.median(factors), 3), len(factors))


def calibration_path() -> Path:
    return data_dir() / CALIBRATION_FILE


def launch_factor(
    *, calibrated_bytes: int, prior_factor: float, planned_kv_bytes: int, measured_kv_bytes: int
) -> float:
    """The factor on the measured terms that makes the planned KV pool the measured one.

    `calibrated_bytes`: the plan's activation + non-torch estimate per GPU (already scaled by
    `prior_factor`, the calibration the plan used). vLLM's pool is its budget less what it
    measured, so a pool smaller by N bytes means N bytes more of those terms."""
    if calibrated_bytes <= 0 or prior_factor <= 0:
        return prior_factor
    corrected = calibrated_bytes + planned_kv_bytes - measured_kv_bytes
    factor = prior_factor * corrected / calibrated_bytes
    return round(min(MAX_FACTOR, max(MIN_FACTOR, factor)), 3)


def load_calibration() -> Calibration:
    """What this machine has measured (empty when nothing was, or the file cannot be read)."""
    try:
        data = json.loads(calibration_path().read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return Calibration()
    return Calibration(tuple(_launches(data)))


def _launches(data: Any) -> Iterator[Launch]:
    rows = data.get("launches") if isinstance(data, dict) else None
    for row in rows if isinstance(rows, list) else ():
        try:
            launch = Launch(
                gpu=str(row["gpu"]),
                vllm=str(row["vllm"]),
                model=str(row["model"]),
                planned_kv_bytes=int(row["planned_kv_bytes"]),
                measured_kv_bytes=int(row["measured_kv_bytes"]),
                factor=float(row["factor"]),
            )
        except (KeyError, TypeError, ValueError):
            continue
        if MIN_FACTOR <= launch.factor <= MAX_FACTOR:
            yield launch


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_suffix(".lock"), "a+") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def record_launches(launches: Sequence[Launch]) -> None:
    """Add these launches to the store (the latest KEEP_PER_KEY per GPU model and vLLM release)."""
    if not launches:
        return
    path = calibration_path()
    with _locked(path):
        kept = [*load_calibration().launches, *launches]
        per_key: dict[tuple[str, str], list[Launch]] = {}
        for launch in kept:
            per_key.setdefault((launch.gpu, launch.vllm), []).append(launch)
        latest = [launch for rows in per_key.values() for launch in rows[-KEEP_PER_KEY:]]
        text = json.dumps({"version": STORE_VERSION, "launches": [asdict(launch) for launch in latest]}, indent=1)
        atomic_write_text(path, text + "\n")
