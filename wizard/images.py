"""Triton vLLM container images: which tag runs on this driver and GPU, and how it serves.

Facts come from two tables copied into the project (see their headers for the sources):
- assets/data/triton-vllm-images.tsv: tag, vLLM, CUDA, the CUDA toolkit's minimum driver (Table 3);
- assets/data/triton-image-serving.tsv: the vLLM engine the backend runs (V0/V1), whether KIND_GPU
  instances reach their own GPU, the compute-capability floor, the minimum driver through CUDA
  minor-version compatibility, and the older data-center branches the release notes allow.

The choice: the newest image this driver runs on these GPUs, never one older than
`OLDEST_AUTO_RELEASE` (25.03's backend puts every KIND_GPU instance on the first GPU and older
images carry a vLLM modelwiz cannot write model.json for).
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass
from typing import Any, Literal

from wizard.errors import ModelwizError, UsageError
from wizard.paths import data_file

IMAGE_REPO = "nvcr.io/nvidia/tritonserver"
OLDEST_AUTO_RELEASE = "25.04"  # never picked automatically below this (see the module doc)
FIRST_V1_ONLY_VLLM = "0.10.2"  # vLLM removed its V0 engine here

Engine = Literal["V0", "V1"]
Routing = Literal["per-instance", "first-gpu"]
GpuKind = Literal["data-center", "consumer"]
# How an image runs on a driver: natively (Table 3), through minor-version compatibility, or
# through the container's forward-compatibility package (data-center GPUs only).
DriverPath = Literal["native", "minor-version", "forward-compat"]

_DRIVER_PATH_TEXT: dict[DriverPath, str] = {
    "native": "which meets its CUDA's minimum driver",
    "minor-version": "through CUDA minor-version compatibility",
    "forward-compat": "through CUDA forward compatibility (data-center GPU)",
}


@dataclass(frozen=True)
class DriverBranch:
    """`R535>=535.86`: any R535 driver at 535.86 or later."""

    branch: int
    min_version: str

    def admits(self, driver: str) -> bool:
        return driver_branch(driver) == self.branch and version_tuple(driver) >= version_tuple(self.min_version)

    def __str__(self) -> str:
        return f"R{self.branch} (>= {self.min_version})"


@dataclass(frozen=True)
class ImageInfo:
    tag: str  # the full reference, nvcr.io/nvidia/tritonserver:26.07-vllm-python-py3
    triton_version: str
    vllm_version: str  # as published, e.g. 0.24.0+092c4842.nv26.7.57386851
    cuda_version: str
    min_driver: str | None  # Table 3 minimum for that CUDA (full features); None when unknown
    engine: Engine  # the vLLM engine Triton's backend runs
    kind_gpu_routing: Routing  # whether each KIND_GPU instance reaches its own GPU
    min_compute_capability: tuple[int, int]
    min_driver_any_gpu: str | None  # CUDA minor-version compatibility floor
    datacenter_branches: tuple[DriverBranch, ...]  # forward compatibility, data-center GPUs only

    @property
    def vllm_release(self) -> str:
        """The plain release number: `0.24.0+092c...` -> `0.24.0`, `0.9.0rc1+...` -> `0.9.0`."""
        match = re.match(r"^(\d+(?:\.\d+)*)", self.vllm_version)
        return match.group(1) if match else self.vllm_version

    @property
    def short_tag(self) -> str:
        return self.tag.rsplit(":", 1)[-1]

    @property
    def release(self) -> str:
        """`25.04` for `...:25.04-vllm-python-py3`."""
        return self.short_tag.split("-", 1)[0]

    def driver_path(self, driver: str, gpu_kind: GpuKind) -> DriverPath | None:
        """How this image runs on `driver` with GPUs of `gpu_kind`; None when it does not."""
        have = version_tuple(driver)
        if self.min_driver and have >= version_tuple(self.min_driver):
            return "native"
        if self.min_driver_any_gpu and have >= version_tuple(self.min_driver_any_gpu):
            return "minor-version"
        if gpu_kind == "data-center" and any(b.admits(driver) for b in self.datacenter_branches):
            return "forward-compat"
        return None

    def driver_requirement(self) -> str:
        """`needs NVIDIA driver 610.43.02 (CUDA 13.3.0; 580.65.06 or newer through CUDA minor-version
        compatibility, or R535 (>= 535.86) on data-center GPUs)`."""
        lesser = []
        if self.min_driver_any_gpu and self.min_driver_any_gpu != self.min_driver:
            lesser.append(f"{self.min_driver_any_gpu} or newer through CUDA minor-version compatibility")
        if self.datacenter_branches:
            lesser.append(f"{', '.join(str(b) for b in self.datacenter_branches)} on data-center GPUs")
        first = self.min_driver or self.min_driver_any_gpu or "an unknown driver"
        more = f"; {', or '.join(lesser)}" if lesser else ""
        return f"needs NVIDIA driver {first} (CUDA {self.cuda_version}{more})"


@dataclass(frozen=True)
class ImageChoice:
    """The image a repository runs, and why; `to_json` is the `"image"` of plan/status --json."""

    info: ImageInfo
    reason: str

    def to_json(self) -> dict[str, Any]:
        return {
            "ref": self.info.tag,
            "vllm_version": self.info.vllm_release,
            "engine": self.info.engine,
            "reason": self.reason,
        }


class ImageError(ModelwizError):
    """No image fits, or the one asked for cannot serve this repository."""


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


def driver_branch(driver: str) -> int:
    """570 for 570.124.06."""
    parts = version_tuple(driver)
    return parts[0] if parts else 0


def _branches(text: str) -> tuple[DriverBranch, ...]:
    out = []
    for item in filter(None, (t.strip() for t in text.split(","))):
        match = re.fullmatch(r"R(\d+)>=([\d.]+)", item)
        if not match:
            raise ValueError(f"bad driver branch {item!r} in triton-image-serving.tsv")
        out.append(DriverBranch(int(match.group(1)), match.group(2)))
    return tuple(out)


def _rows(name: str) -> list[dict[str, str]]:
    with data_file(name).open(newline="", encoding="utf-8") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    return list(csv.DictReader(lines, delimiter="\t"))


@functools.lru_cache(maxsize=1)
def image_table() -> tuple[ImageInfo, ...]:
    """All known images, oldest first."""
    serving = {row["release"]: row for row in _rows("triton-image-serving.tsv")}
    rows: list[ImageInfo] = []
    for row in _rows("triton-vllm-images.tsv"):
        release = row["tag"].rsplit(":", 1)[-1].split("-", 1)[0]
        how = serving[release]
        major, minor = (int(x) for x in how["min_compute_capability"].split("."))
        engine: Engine = "V0" if how["engine"] == "V0" else "V1"
        routing: Routing = "first-gpu" if how["kind_gpu_routing"] == "first-gpu" else "per-instance"
        rows.append(
            ImageInfo(
                tag=row["tag"],
                triton_version=row["triton_version"],
                vllm_version=row["vllm_version"],
                cuda_version=row["cuda_version"],
                min_driver=row["min_driver_linux"] or None,
                engine=engine,
                kind_gpu_routing=routing,
                min_compute_capability=(major, minor),
                min_driver_any_gpu=how["min_driver_any_gpu"] or None,
                datacenter_branches=_branches(how["datacenter_forward_compat_drivers"]),
            )
        )
    return tuple(rows)


def find_image(ref: str) -> ImageInfo | None:
    """The table row for an image reference (full or `26.07-vllm-python-py3`), if known."""
    for info in image_table():
        if ref in (info.tag, info.short_tag):
            return info
    return None


def engine_for(vllm_release: str) -> Engine:
    """The engine Triton's backend runs with this vLLM: the table's, for a release an image carries;
    else V0 below 0.10.2 (the first vLLM without V0, see triton-image-serving.tsv)."""
    plain = re.match(r"^(\d+(?:\.\d+)*)", vllm_release)
    release = plain.group(1) if plain else vllm_release
    for info in image_table():
        if info.vllm_release == release:
            return info.engine
    return "V0" if version_tuple(release) < version_tuple(FIRST_V1_ONLY_VLLM) else "V1"


def auto_candidates() -> tuple[ImageInfo, ...]:
    """Images modelwiz may pick by itself: 25.04 or newer, with a known minimum driver."""
    return tuple(
        i for i in image_table() if i.min_driver and version_tuple(i.release) >= version_tuple(OLDEST_AUTO_RELEASE)
    )


def pick_image(driver_version: str | None, gpu_kind: GpuKind = "consumer") -> ImageInfo | None:
    """The newest auto-pickable image this driver runs on GPUs of `gpu_kind` (the newest of all
    when the driver is unknown because the GPUs are described). None when none runs."""
    candidates = auto_candidates()
    if driver_version:
        candidates = tuple(i for i in candidates if i.driver_path(driver_version, gpu_kind))
    return candidates[-1] if candidates else None


def choose_image(driver_version: str | None, gpu_kind: GpuKind = "consumer") -> ImageChoice:
    """`pick_image` with the reason for the choice; ImageError (one line + fix) when none runs."""
    info = pick_image(driver_version, gpu_kind)
    if info is None:
        oldest = auto_candidates()[0]
        raise ImageError(
            f"NVIDIA driver {driver_version} is older than every known Triton vLLM image from "
            f"{OLDEST_AUTO_RELEASE} on needs on {gpu_kind} GPUs ({oldest.short_tag} {oldest.driver_requirement()})",
            hint="update the NVIDIA driver (R580 is the current long-term branch), or name an image with --image",
        )
    return ImageChoice(info, choice_reason(info, driver_version, gpu_kind))


def image_record(driver_version: str | None, gpu_kind: GpuKind) -> dict[str, Any]:
    """`choose_image(...).to_json()`, or the same fields with no ref and the reason none runs."""
    try:
        return choose_image(driver_version, gpu_kind).to_json()
    except ImageError as error:
        return no_image_record(error)


def no_image_record(error: ImageError) -> dict[str, Any]:
    """The `"image"` fields when no image runs: no ref, and why."""
    return {"ref": None, "vllm_version": None, "engine": None, "reason": error.one_line()}


def choice_reason(info: ImageInfo, driver_version: str | None, gpu_kind: GpuKind) -> str:
    engine = f"vLLM {info.vllm_release}, {info.engine} engine in Triton"
    if not driver_version:
        return f"newest known image ({engine}); the driver is unknown (pass --driver to plan for one)"
    path = info.driver_path(driver_version, gpu_kind)
    how = _DRIVER_PATH_TEXT[path] if path else "which it does not meet"
    return f"newest image that runs on driver {driver_version} ({gpu_kind} GPUs), {how} ({engine})"


def describe_choice(ref: str, driver_version: str | None, gpu_kind: GpuKind) -> ImageChoice:
    """The `"image"` record for an image named by the user or recorded in a repository."""
    info = find_image(ref)
    if info is None:
        raise UsageError(
            f"unknown Triton vLLM image {ref!r}",
            hint="use a tag like 26.07-vllm-python-py3 (see `modelwiz gpus` for the one this driver runs)",
        )
    if not driver_version:
        return ImageChoice(info, f"named image (vLLM {info.vllm_release}, {info.engine} engine in Triton)")
    path = info.driver_path(driver_version, gpu_kind)
    how = _DRIVER_PATH_TEXT[path] if path else f"but driver {driver_version} does not run it"
    return ImageChoice(info, f"named image, {how} (vLLM {info.vllm_release}, {info.engine} engine in Triton)")
