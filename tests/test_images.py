"""Which Triton vLLM image runs on a driver and GPU kind, and what each image's backend does."""

from __future__ import annotations

import pytest

from wizard import images, preflight
from wizard.gpus import describe
from wizard.images import ImageError, choose_image, find_image, image_table, pick_image, version_tuple

H100, RTX4090, V100 = "H100-80GB", "RTX4090", "V100-32GB"

# Real driver releases (nvidia-smi strings) -> the image for a data-center H100 and a consumer RTX 4090.
# R535/R545 data-center hosts may run CUDA 13 images whose release notes list them for forward
# compatibility (26.04 is the newest that does); every 12.x image runs on >= 525.60.13 and every 13.x
# image on R580 through minor-version compatibility; nothing below 25.04 is ever picked.
CASES = [
    ("535.230.02", "26.04", "forward-compat", "25.07", "minor-version"),
    ("550.127.05", "25.07", "minor-version", "25.07", "minor-version"),
    ("560.35.03", "25.07", "minor-version", "25.07", "minor-version"),
    ("570.86.15", "25.07", "minor-version", "25.07", "minor-version"),
    ("570.124.06", "25.07", "minor-version", "25.07", "minor-version"),
    ("575.57.08", "25.07", "native", "25.07", "native"),
    ("580.65.06", "26.07", "minor-version", "26.07", "minor-version"),
    ("580.95.05", "26.07", "minor-version", "26.07", "minor-version"),
    ("610.43.02", "26.07", "native", "26.07", "native"),
]


@pytest.mark.parametrize("driver, dc_tag, dc_path, consumer_tag, consumer_path", CASES)
def test_image_for_real_drivers_and_gpu_kinds(driver, dc_tag, dc_path, consumer_tag, consumer_path):
    for spec, tag, path in ((H100, dc_tag, dc_path), (RTX4090, consumer_tag, consumer_path)):
        inventory = describe(spec, driver)
        choice = choose_image(inventory.driver_version, inventory.gpu_kind)
        assert choice.info.release == tag, (driver, spec)
        assert choice.info.driver_path(driver, inventory.gpu_kind) == path
        assert version_tuple(choice.info.release) >= version_tuple("25.04")
        assert driver in choice.reason and inventory.gpu_kind in choice.reason
        assert choice.to_json() == {
            "ref": choice.info.tag,
            "vllm_version": choice.info.vllm_release,
            "engine": choice.info.engine,
            "reason": choice.reason,
        }


def test_v100_is_data_center_but_refused_by_compute_capability():
    inventory = describe(V100, "580.95.05")
    assert inventory.gpu_kind == "data-center"
    assert all(i.min_compute_capability == (7, 5) for i in images.auto_candidates())
    assert inventory.gpus[0].compute_capability < find_image("25.04-vllm-python-py3").min_compute_capability


def test_gpu_kind_from_the_name():
    assert describe("H100-80GB,L4,T4,A100-40GB").gpu_kind == "data-center"
    assert describe("RTX4090").gpu_kind == "consumer"
    assert describe("RTX6000-Ada").gpu_kind == "consumer"  # workstation: no forward compatibility
    assert describe("H100-80GB,RTX4090").gpu_kind == "consumer"  # every GPU must qualify
    assert describe("24GiB").gpu_kind == "consumer"  # unknown: never assume forward compatibility


def test_a_driver_too_old_for_every_usable_image_is_refused_with_the_requirement():
    with pytest.raises(ImageError, match=r"older than every known Triton vLLM image from 25\.04") as info:
        choose_image("520.61.05", "consumer")
    assert "25.04-vllm-python-py3 needs NVIDIA driver 575.51.03" in info.value.message
    assert "525.60.13 or newer through CUDA minor-version compatibility" in info.value.message
    assert "driver" in info.value.hint


def test_never_auto_picks_below_25_04():
    assert all(version_tuple(i.release) >= (25, 4) for i in images.auto_candidates())
    for driver in ("525.60.13", "530.30.02", "545.23.08", "570.124.06", "575.51.02"):
        for kind in ("consumer", "data-center"):
            info = pick_image(driver, kind)
            assert info is not None and version_tuple(info.release) >= (25, 4), (driver, kind)


def test_unknown_driver_picks_the_newest_with_a_known_minimum():
    newest = [i for i in image_table() if i.min_driver][-1]
    assert pick_image(None) == newest
    assert "driver is unknown" in choose_image(None).reason


def test_engine_and_routing_per_image():
    by_release = {i.release: i for i in image_table()}
    # The backend's CI asserts the V0 fallback on r25.06-r25.09; r25.10 ships vLLM 0.10.2 (V1 only).
    for release in ("25.04", "25.05", "25.06", "25.07", "25.08", "25.09"):
        assert by_release[release].engine == "V0"
    for release in ("25.10", "25.12", "26.07"):
        assert by_release[release].engine == "V1"
    assert by_release["25.03"].kind_gpu_routing == "first-gpu"
    assert all(i.kind_gpu_routing == "per-instance" for i in images.auto_candidates())
    assert images.engine_for("0.9.2") == "V0" and images.engine_for("0.10.2") == "V1"
    assert images.engine_for("0.10.1.1+381074ae.nv25.9.cu130") == "V0"


def test_forward_compat_only_on_data_center_gpus():
    info = find_image("26.04-vllm-python-py3")
    assert info.driver_path("535.230.02", "data-center") == "forward-compat"
    assert info.driver_path("535.230.02", "consumer") is None
    assert info.driver_path("535.54.03", "data-center") is None  # below 535.86
    assert find_image("26.07-vllm-python-py3").driver_path("535.230.02", "data-center") is None


def test_preflight_knows_forward_and_minor_version_compatibility():
    assert preflight.check_driver("26.04-vllm-python-py3", "535.230.02", "data-center") is None
    assert preflight.check_driver("26.04-vllm-python-py3", "535.230.02") is None  # kind unknown: not refused
    problem = preflight.check_driver("26.04-vllm-python-py3", "535.230.02", "consumer")
    assert problem and "needs NVIDIA driver 595.58.03" in problem.message and "25.07" in problem.fix
    assert preflight.check_driver("26.07-vllm-python-py3", "580.65.06", "consumer") is None
    with pytest.raises(preflight.PreflightFailed, match="older than every known"):
        preflight.choose_image(None, "520.61.05")
