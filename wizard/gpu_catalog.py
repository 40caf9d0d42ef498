"""Known GPU models, for `--gpus SPEC`: plan for a machine you are not sitting at.

Memory totals are what NVML (nvidia-smi) reports for the card, in MiB; compute capabilities
are NVIDIA's published ones. A described GPU is idle: the driver keeps `reserved` back, the rest
is free.
"""

from __future__ import annotations

from dataclasses import dataclass

from wizard.units import MiB

# NVML names of GPUs that are not data-center parts: CUDA forward compatibility (newer containers on
# older long-term drivers) is "supported on NVIDIA Data Center GPUs" only
# (https://docs.nvidia.com/deploy/cuda-compatibility/, "Forward Compatibility").
_NOT_DATACENTER_WORDS = ("GEFORCE", "TITAN", "QUADRO", "RTX")


@dataclass(frozen=True)
class GpuModel:
    key: str  # what users type, e.g. "H100-80GB"
    nvml_name: str  # what NVML calls it
    memory_total_mib: int  # NVML total, MiB
    compute_capability: tuple[int, int]
    aliases: tuple[str, ...] = ()

    @property
    def memory_total_bytes(self) -> int:
        return self.memory_total_mib * MiB


CATALOG: tuple[GpuModel, ...] = (
    GpuModel("H200", "NVIDIA H200", 143771, (9, 0), ("H200-141GB",)),
    GpuModel("H100-80GB", "NVIDIA H100 80GB HBM3", 81559, (9, 0), ("H100", "H100-SXM", "H100-PCIE")),
    GpuModel("H100-94GB", "NVIDIA H100 NVL", 95830, (9, 0), ("H100-NVL",)),
    GpuModel("A100-80GB", "NVIDIA A100-SXM4-80GB", 81920, (8, 0)),
    GpuModel("A100-40GB", "NVIDIA A100-SXM4-40GB", 40960, (8, 0), ("A100",)),
    GpuModel("L40S", "NVIDIA L40S", 46068, (8, 9)),
    GpuModel("L40", "NVIDIA L40", 46068, (8, 9)),
    GpuModel("L4", "NVIDIA L4", 23034, (8, 9)),
    GpuModel("A10G", "NVIDIA A10G", 23028, (8, 6)),
    GpuModel("A10", "NVIDIA A10", 23028, (8, 6)),
    GpuModel("A40", "NVIDIA A40", 46068, (8, 6)),
    GpuModel("T4", "Tesla T4", 15360, (7, 5)),
    GpuModel("V100-32GB", "Tesla V100-SXM2-32GB", 32768, (7, 0)),
    GpuModel("V100-16GB", "Tesla V100-SXM2-16GB", 16384, (7, 0), ("V100",)),
    GpuModel("RTX4090", "NVIDIA GeForce RTX 4090", 24564, (8, 9), ("RTX-4090",)),
    GpuModel("RTX3090", "NVIDIA GeForce RTX 3090", 24576, (8, 6), ("RTX-3090",)),
    GpuModel("RTX6000-Ada", "NVIDIA RTX 6000 Ada Generation", 49140, (8, 9), ("RTX-6000-Ada",)),
)

# The compute capability assumed for a GPU described only by its memory size ("24GiB").
GENERIC_COMPUTE_CAPABILITY = (8, 0)


def _norm(text: str) -> str:
    return text.strip().upper().replace("_", "-").replace(" ", "-")


_BY_KEY: dict[str, GpuModel] = {}
for _model in CATALOG:
    for _name in (_model.key, *_model.aliases):
        _BY_KEY[_norm(_name)] = _model


def lookup(name: str) -> GpuModel | None:
    return _BY_KEY.get(_norm(name))


def is_datacenter(nvml_name: str) -> bool:
    """A data-center GPU (H100, A100, L4, T4, ...), judged by the name NVML reports.

    GeForce, TITAN and workstation (Quadro / RTX) cards are not; a GPU described only by its size
    is not assumed to be one."""
    upper = nvml_name.upper()
    if not upper.startswith(("NVIDIA", "TESLA")):
        return False
    return not any(word in upper for word in _NOT_DATACENTER_WORDS)


def known_names() -> list[str]:
    return [model.key for model in CATALOG]


# NVML's total minus the CUDA total vLLM logs, by NVML total (MiB), where a public log shows both:
# H100 80GB 79.19 GiB, A100-SXM4-80GB 79.15, L40S/L40/A40 44.42, RTX 3090 23.58, RTX 4090 23.55
# (the gpus of tests/data/vllm_deployments.json). A flat 0.6 % over-promises 170-380 MiB on these.
_MEASURED_RESERVED_MIB = {81559: 468, 81920: 870, 46068: 582, 24576: 430, 24564: 449}


def driver_reserved_bytes(total_bytes: int) -> int:
    """What the driver/firmware keeps back on an idle GPU (NVML v2 `reserved`).

    Measured where vLLM logs show CUDA's total for the card; otherwise 0.6% of the total, at
    least 256 MiB (an H100 80GB reports 81,559 MiB and CUDA sees ~79.19 GiB, 0.46 GiB less).
    """
    measured = _MEASURED_RESERVED_MIB.get(total_bytes // MiB)
    if measured is not None and total_bytes % MiB == 0:
        return measured * MiB
    return max(256 * MiB, int(total_bytes * 0.006) // MiB * MiB)
