"""GPU discovery through (fake) NVML, and described inventories."""

from __future__ import annotations

import json

import pynvml as N
import pytest

from tests.fixtures_nvml import FakeGpu, FakeMig, h100
from wizard import gpus
from wizard.errors import UsageError
from wizard.units import GiB, MiB


def test_eight_gpus_are_read_with_v2_memory_and_processes(fake_nvml):
    fake = fake_nvml([h100(i, processes=[(4242, 2 * GiB)] if i == 3 else []) for i in range(8)])
    inv = gpus.discover()
    assert inv.source == "nvml"
    assert inv.driver_version == "580.95.05"
    assert inv.cuda_driver_version == "13.0"
    assert [g.index for g in inv.gpus] == list(range(8))
    g3 = inv.gpus[3]
    assert g3.memory_total_bytes == 81559 * MiB
    assert g3.memory_reserved_bytes == 479 * MiB
    assert g3.memory_used_bytes == 479 * MiB + 2 * GiB
    assert g3.memory_free_bytes == g3.memory_total_bytes - g3.memory_used_bytes
    assert g3.processes == (gpus.GpuProcess(4242, 2 * GiB),)
    assert g3.other_processes_bytes == 2 * GiB
    assert g3.cuda_total_bytes == (81559 - 479) * MiB
    assert g3.compute_capability_str == "9.0"
    assert g3.pci_bus_id == "00000000:1B:00.0"
    assert not fake.initialized and fake.shutdowns == 1  # NVML is shut down again


def test_one_gpu_old_driver_falls_back_to_v1_memory(fake_nvml):
    fake_nvml([FakeGpu(name="NVIDIA A10", total=23028 * MiB, reserved=300 * MiB, cc=(8, 6))], v2_memory=False)
    (gpu,) = gpus.discover().gpus
    assert gpu.memory_reserved_bytes is None
    # CUDA's total is estimated with the fallback reserve when NVML cannot say.
    assert gpu.cuda_total_bytes == 23028 * MiB - gpus.FALLBACK_RESERVED_BYTES


def test_mig_slices_become_devices(fake_nvml):
    slices = [FakeMig(f"MIG-{j}", "NVIDIA A100-SXM4-80GB MIG 3g.40gb", 40 * GiB) for j in range(2)]
    fake_nvml([FakeGpu(name="NVIDIA A100-SXM4-80GB", total=81920 * MiB, cc=(8, 0), mig=slices), h100(1, mig=[])])
    inv = gpus.discover()
    a100, h = inv.gpus
    assert a100.mig_enabled and len(a100.mig_devices) == 2
    assert not h.mig_enabled
    assert [d.cdi_id for d in inv.devices] == ["0:0", "0:1", "1"]
    assert inv.devices[0].uuid == "MIG-0"
    assert inv.devices[0].memory_total_bytes == 40 * GiB
    data = inv.to_json()
    assert data["gpus"][0]["mig"]["enabled"] is True
    assert [d["cdi_device"] for d in data["gpus"][0]["mig"]["devices"]] == ["nvidia.com/gpu=0:0", "nvidia.com/gpu=0:1"]


@pytest.mark.parametrize(
    ("kwargs", "expected"),
    [
        ({"init_error": N.NVML_ERROR_DRIVER_NOT_LOADED}, "driver is installed but not loaded"),
        ({"init_error": N.NVML_ERROR_NO_PERMISSION}, "no permission"),
        ({"init_error": N.NVML_ERROR_LIB_RM_VERSION_MISMATCH}, "versions differ"),
        ({"permission_error_on": "nvmlDeviceGetMemoryInfo"}, "no permission"),
    ],
)
def test_nvml_failures_are_explained(fake_nvml, kwargs, expected):
    fake_nvml([h100(0)], **kwargs)
    with pytest.raises(gpus.NvmlError) as info:
        gpus.discover()
    assert expected in info.value.message
    assert info.value.hint


def test_lost_gpu_is_explained(fake_nvml):
    fake_nvml([h100(0), h100(1, lost=True)])
    with pytest.raises(gpus.NvmlError, match="fell off the bus"):
        gpus.discover()


def test_no_gpus_is_an_error(fake_nvml):
    fake_nvml([])
    with pytest.raises(gpus.NvmlError, match="reports no GPUs"):
        gpus.discover()


def test_missing_library_uses_the_real_nvml_loader():
    # This machine has no NVIDIA driver: the real nvidia-ml-py raises NVMLError_LibraryNotFound.
    try:
        N.nvmlInit()
    except N.NVMLError_LibraryNotFound:
        pass
    else:  # pragma: no cover - only on a machine with a driver
        N.nvmlShutdown()
        pytest.skip("this machine has an NVIDIA driver")
    with pytest.raises(gpus.NvmlError, match="no NVIDIA driver found") as info:
        gpus.discover()
    assert "--gpus" in info.value.hint


@pytest.mark.parametrize(
    ("spec", "names", "total_mib"),
    [
        ("2xH100-80GB", ["NVIDIA H100 80GB HBM3"] * 2, [81559, 81559]),
        ("A100-40GB,L4", ["NVIDIA A100-SXM4-40GB", "NVIDIA L4"], [40960, 23034]),
        ("h100", ["NVIDIA H100 80GB HBM3"], [81559]),
        (" 4 x l40s ", ["NVIDIA L40S"] * 4, [46068] * 4),
        ("24GiB", ["GPU (24GiB)"], [24576]),
    ],
)
def test_described_inventories(spec, names, total_mib):
    inv = gpus.describe(spec)
    assert inv.source == "described"
    assert [g.name for g in inv.gpus] == names
    assert [g.memory_total_bytes // MiB for g in inv.gpus] == total_mib
    for g in inv.gpus:  # idle: free = total minus a small driver reserve
        assert 0 < g.memory_total_bytes - g.memory_free_bytes <= GiB
        assert g.memory_used_bytes == g.memory_reserved_bytes
        assert g.processes == ()
    assert len({g.uuid for g in inv.gpus}) == len(inv.gpus)


def test_described_compute_capabilities():
    inv = gpus.describe("T4,V100-16GB,A100-80GB,RTX4090,H200")
    assert [g.compute_capability_str for g in inv.gpus] == ["7.5", "7.0", "8.0", "8.9", "9.0"]


@pytest.mark.parametrize("spec", ["", "B200", "2xfoo", "0xH100", "512MiB", "3 x"])
def test_bad_specs_are_usage_errors(spec):
    with pytest.raises(UsageError):
        gpus.describe(spec)


def test_unknown_gpu_lists_the_known_ones():
    with pytest.raises(UsageError) as info:
        gpus.describe("B200")
    assert "H100-80GB" in info.value.hint and "RTX6000-Ada" in info.value.hint


def test_inventory_json_round_trip(fake_nvml):
    slices = [FakeMig("MIG-a", "MIG 1g.10gb", 10 * GiB, used=GiB)]
    fake_nvml([FakeGpu(mig=slices, processes=[(7, 5 * GiB)]), h100(1)])
    inv = gpus.discover()
    again = gpus.GpuInventory.from_json(json.loads(json.dumps(inv.to_json())))
    assert again.gpus == inv.gpus
    assert again.driver_version == inv.driver_version


def test_load_inventory_prefers_the_spec_then_the_environment(monkeypatch, fake_nvml):
    fake_nvml([h100(0)])
    assert gpus.load_inventory("L4").gpus[0].name == "NVIDIA L4"
    monkeypatch.setenv("MODELWIZ_GPUS", "2xA10")
    assert len(gpus.load_inventory().gpus) == 2
    monkeypatch.delenv("MODELWIZ_GPUS")
    assert gpus.load_inventory().source == "nvml"
