"""Triton vLLM container images: which tag runs on this driver, and which vLLM it carries.

Facts come from assets/data/triton-vllm-images.tsv (compatibility matrix + CUDA minimum drivers),
copied into the project; see that file's header for its sources.
"""

from __future__ import annotations

import csv
import functools
import re
from dataclasses import dataclass

from wizard.paths import data_file

IMAGE_REPO = "nvcr.io/nvidia/tritonserver"


@dataclass(frozen=True)
class ImageInfo:
    tag: str  # the full reference, nvcr.io/nvidia/tritonserver:26.07-vllm-python-py3
    triton_version: str
    vllm_version: str  # as published, e.g. 0.24.0+092c4842.nv26.7.57386851
    cuda_version: str
    min_driver: str | None  # Linux x86_64 minimum driver for that CUDA; None when unknown

    @property
    def vllm_release(self) -> str:
        """The plain release number: `0.24.0+092c...` -> `0.24.0`, `0.9.0rc1+...` -> `0.9.0`."""
        match = re.match(r"^(\d+(?:\.\d+)*)", self.vllm_version)
        return match.group(1) if match else self.vllm_version

    @property
    def short_tag(self) -> str:
        return self.tag.rsplit(":", 1)[-1]


def version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(p) for p in re.findall(r"\d+", version))


@functools.lru_cache(maxsize=1)
def image_table() -> tuple[ImageInfo, ...]:
    """All known images, oldest first."""
    rows: list[ImageInfo] = []
    with data_file("triton-vllm-images.tsv").open(newline="") as handle:
        lines = [line for line in handle if not line.startswith("#")]
    for row in csv.DictReader(lines, delimiter="\t"):
        rows.append(
            ImageInfo(
                tag=row["tag"],
                triton_version=row["triton_version"],
                vllm_version=row["vllm_version"],
                cuda_version=row["cuda_version"],
                min_driver=row["min_driver_linux"] or None,
            )
        )
    return tuple(rows)


def find_image(ref: str) -> ImageInfo | None:
    """The table row for an image reference (full or `26.07-vllm-python-py3`), if known."""
    for info in image_table():
        if ref in (info.tag, info.short_tag):
            return info
    return None


def pick_image(driver_version: str | None) -> ImageInfo | None:
    """The newest image whose minimum driver this host meets (any, when the driver is unknown
    because the GPUs are described). Images with no known minimum are never picked
    automatically. None when the driver is too old for every image."""
    candidates = [i for i in image_table() if i.min_driver]
    if driver_version:
        have = version_tuple(driver_version)
        candidates = [i for i in candidates if version_tuple(i.min_driver or "") <= have]
    return candidates[-1] if candidates else None
