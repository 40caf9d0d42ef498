"""What GPUs this machine has: NVML discovery, or a described inventory (`--gpus SPEC`).

`GpuInventory` is the one immutable picture of the GPUs that everything downstream (planner,
launcher, wizard) works from. `discover()` reads it through NVML (nvidia-ml-py, module
`pynvml`); `describe(spec)` builds it from text such as `2xH100-80GB,L4`.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, replace
from typing import Any

from wizard import gpu_catalog
from wizard.errors import ModelwizError, UsageError
from wizard.images import GpuKind
from wizard.units import GiB, MiB, parse_size

# When NVML cannot tell how much the driver reserves (v1 memory info), assume this much.
FALLBACK_RESERVED_BYTES = GiB // 2

GPUS_ENV = "MODELWIZ_GPUS"
# The driver of a described machine (`--driver VERSION`), for choosing its Triton image.
DRIVER_ENV = "MODELWIZ_DRIVER"
_DRIVER_RE = re.compile(r"^\d{3,4}(\.\d{1,3}){1,2}$")


@dataclass(frozen=True)
class GpuProcess:
    pid: int
    used_memory_bytes: int | None  # None: the driver would not say (no permission, MIG)


@dataclass(frozen=True)
class Gpu:
    """One device vLLM can run on: a whole GPU, or one MIG slice of it (`mig_index` set)."""

    index: int  # NVML index (PCI bus order); for a slice, its parent's
    name: str
    uuid: str
    memory_total_bytes: int
    memory_free_bytes: int
    memory_used_bytes: int
    compute_capability: tuple[int, int]
    pci_bus_id: str = ""
    memory_reserved_bytes: int | None = None  # NVML v2 `reserved`; None when unknown
    mig_enabled: bool = False
    mig_devices: tuple[Gpu, ...] = ()  # the slices, when MIG is enabled
    mig_index: int | None = None  # set on a slice
    processes: tuple[GpuProcess, ...] = ()

    @property
    def cdi_id(self) -> str:
        """The CDI device name suffix: `nvidia.com/gpu=<cdi_id>` (`0`, or `0:1` for a MIG slice)."""
        return str(self.index) if self.mig_index is None else f"{self.index}:{self.mig_index}"

    @property
    def cuda_total_bytes(self) -> int:
        """The total CUDA (and so vLLM's gpu_memory_utilization) is a fraction of.

        NVML's total minus what the driver reserves; vLLM measures with cudaMemGetInfo.
        """
        reserved = self.memory_reserved_bytes
        if reserved is None:
            reserved = FALLBACK_RESERVED_BYTES
        return max(0, self.memory_total_bytes - reserved)

    @property
    def compute_capability_str(self) -> str:
        return f"{self.compute_capability[0]}.{self.compute_capability[1]}"

    @property
    def other_processes_bytes(self) -> int:
        """Memory held by processes already running (beyond the driver's own reserve)."""
        known = sum(p.used_memory_bytes or 0 for p in self.processes)
        reserved = self.memory_reserved_bytes or 0
        return max(known, self.memory_used_bytes - reserved, 0)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "index": self.index,
            "name": self.name,
            "uuid": self.uuid,
            "pci_bus_id": self.pci_bus_id,
            "memory_total_bytes": self.memory_total_bytes,
            "memory_free_bytes": self.memory_free_bytes,
            "memory_used_bytes": self.memory_used_bytes,
            "memory_reserved_bytes": self.memory_reserved_bytes,
            "compute_capability": self.compute_capability_str,
            "processes": [{"pid": p.pid, "used_memory_bytes": p.used_memory_bytes} for p in self.processes],
        }
        if self.mig_index is not None:
            data["mig_index"] = self.mig_index
            data["cdi_device"] = f"nvidia.com/gpu={self.cdi_id}"
            return data
        data["cdi_device"] = f"nvidia.com/gpu={self.cdi_id}"
        data["mig"] = {
            "enabled": self.mig_enabled,
            "devices": [d.to_json() for d in self.mig_devices],
        }
        return data


@dataclass(frozen=True)
class GpuInventory:
    source: str  # "nvml" or "described"
    gpus: tuple[Gpu, ...]
    driver_version: str | None = None
    cuda_driver_version: str | None = None  # "12.4"
    spec: str | None = None  # the --gpus text, when described

    @property
    def devices(self) -> tuple[Gpu, ...]:
        """What engines can be placed on: whole GPUs, and each MIG slice as its own device."""
        out: list[Gpu] = []
        for gpu in self.gpus:
            out.extend(gpu.mig_devices if gpu.mig_enabled else (gpu,))
        return tuple(out)

    @property
    def gpu_kind(self) -> GpuKind:
        """ "data-center" when every GPU is one (forward compatibility needs that), else "consumer"."""
        if self.gpus and all(gpu_catalog.is_datacenter(g.name) for g in self.gpus):
            return "data-center"
        return "consumer"

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "driver_version": self.driver_version,
            "cuda_driver_version": self.cuda_driver_version,
            "gpus": [g.to_json() for g in self.gpus],
        }

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> GpuInventory:
        def gpu(d: dict[str, Any]) -> Gpu:
            major, minor = (int(x) for x in str(d["compute_capability"]).split("."))
            mig = d.get("mig") or {}
            return Gpu(
                index=int(d["index"]),
                name=d["name"],
                uuid=d["uuid"],
                pci_bus_id=d.get("pci_bus_id", ""),
                memory_total_bytes=int(d["memory_total_bytes"]),
                memory_free_bytes=int(d["memory_free_bytes"]),
                memory_used_bytes=int(d["memory_used_bytes"]),
                memory_reserved_bytes=d.get("memory_reserved_bytes"),
                compute_capability=(major, minor),
                mig_enabled=bool(mig.get("enabled", False)),
                mig_devices=tuple(gpu(m) for m in mig.get("devices", [])),
                mig_index=d.get("mig_index"),
                processes=tuple(GpuProcess(int(p["pid"]), p.get("used_memory_bytes")) for p in d.get("processes", [])),
            )

        return cls(
            source=data["source"],
            gpus=tuple(gpu(g) for g in data["gpus"]),
            driver_version=data.get("driver_version"),
            cuda_driver_version=data.get("cuda_driver_version"),
        )


# --------------------------------------------------------------------------------------------
# Described inventories (--gpus / MODELWIZ_GPUS)

_ITEM_RE = re.compile(r"^\s*(?:(\d+)\s*[x*]\s*)?(.+?)\s*$", re.IGNORECASE)


def check_driver_version(text: str) -> str:
    """A driver version as nvidia-smi prints it (570.124.06, 580.65.06); UsageError otherwise."""
    text = text.strip()
    if not _DRIVER_RE.match(text):
        raise UsageError(
            f"--driver: {text!r} is not an NVIDIA driver version",
            hint="write it as nvidia-smi shows it, e.g. --driver 570.124.06",
        )
    return text


def describe(spec: str, driver_version: str | None = None) -> GpuInventory:
    """`2xH100-80GB`, `A100-40GB,L4`, `24GiB`, `4x L40S` -> an inventory of idle GPUs (on a machine
    with NVIDIA driver `driver_version`, when known)."""
    if not spec or not spec.strip():
        raise UsageError("--gpus is empty", hint="write it like 2xH100-80GB, A100-40GB,L4 or 24GiB")
    gpus: list[Gpu] = []
    for item in spec.split(","):
        match = _ITEM_RE.match(item)
        if not match or not match.group(2):
            raise UsageError(f"--gpus: cannot read {item!r}", hint="write it like 2xH100-80GB")
        count = int(match.group(1) or 1)
        if count < 1 or count > 64:
            raise UsageError(f"--gpus: {count} GPUs in {item.strip()!r} is not a usable count (1-64)")
        name, total, cc = _resolve_type(match.group(2))
        for _ in range(count):
            index = len(gpus)
            reserved = gpu_catalog.driver_reserved_bytes(total)
            gpus.append(
                Gpu(
                    index=index,
                    name=name,
                    uuid=f"GPU-described-{index:04d}",
                    pci_bus_id=f"00000000:{index + 1:02X}:00.0",
                    memory_total_bytes=total,
                    memory_free_bytes=total - reserved,
                    memory_used_bytes=reserved,
                    memory_reserved_bytes=reserved,
                    compute_capability=cc,
                )
            )
    driver = check_driver_version(driver_version) if driver_version else None
    return GpuInventory(source="described", gpus=tuple(gpus), spec=spec.strip(), driver_version=driver)


def _resolve_type(text: str) -> tuple[str, int, tuple[int, int]]:
    model = gpu_catalog.lookup(text)
    if model is not None:
        return model.nvml_name, model.memory_total_bytes, model.compute_capability
    try:
        total = parse_size(text)
    except ValueError:
        known = ", ".join(gpu_catalog.known_names())
        raise UsageError(
            f"--gpus: unknown GPU {text.strip()!r}",
            hint=f"use one of {known}, or a memory size such as 24GiB",
        ) from None
    if total < 1 * GiB:
        raise UsageError(f"--gpus: {text.strip()!r} is smaller than any GPU vLLM can use")
    total = total // MiB * MiB
    return f"GPU ({text.strip()})", total, gpu_catalog.GENERIC_COMPUTE_CAPABILITY


# --------------------------------------------------------------------------------------------
# NVML discovery


class NvmlError(ModelwizError):
    """NVML could not tell us about the GPUs; the message says why and what to do."""


_NO_GPU_HINT = "or use --gpus (for example --gpus 2xH100-80GB) to plan for another machine"


def _explain(exc: Exception) -> NvmlError:
    import pynvml as N

    if isinstance(exc, N.NVMLError_LibraryNotFound):
        return NvmlError(
            "no NVIDIA driver found (libnvidia-ml.so.1 could not be loaded)",
            hint=f"install the NVIDIA driver, {_NO_GPU_HINT}",
        )
    if isinstance(exc, N.NVMLError_DriverNotLoaded):
        return NvmlError(
            "the NVIDIA driver is installed but not loaded",
            hint=f"load it (sudo modprobe nvidia) or reboot, {_NO_GPU_HINT}",
        )
    if isinstance(exc, N.NVMLError_NoPermission):
        return NvmlError(
            "no permission to read the GPUs through NVML",
            hint="add your user to the group that owns /dev/nvidia* (often 'video'), or run as root",
        )
    if isinstance(exc, N.NVMLError_LibRmVersionMismatch):
        return NvmlError(
            "the NVIDIA driver library and kernel module versions differ (driver updated without a reboot)",
            hint="reboot, or reload the nvidia kernel modules",
        )
    if isinstance(exc, N.NVMLError_GpuIsLost):
        return NvmlError(
            "a GPU fell off the bus (NVML: GPU is lost)",
            hint="check `nvidia-smi` and the kernel log (dmesg); a reset or reboot is usually needed",
        )
    if isinstance(exc, N.NVMLError):
        return NvmlError(f"NVML failed: {exc}", hint=f"check `nvidia-smi`, {_NO_GPU_HINT}")
    return NvmlError(f"NVML failed: {exc}", hint=_NO_GPU_HINT)


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


def discover() -> GpuInventory:
    """Read the GPUs through NVML. Raises `NvmlError` with a clear message and a fix."""
    try:
        import pynvml as N
    except ImportError:  # nvidia-ml-py is a dependency; this only happens in a broken install
        raise NvmlError(
            "the nvidia-ml-py package is missing", hint="reinstall modelwiz (pip install modelwiz)"
        ) from None
    try:
        N.nvmlInit()
    except Exception as exc:  # noqa: BLE001 - every NVMLError subclass, and ctypes' OSError
        raise _explain(exc) from None
    try:
        driver = _text(N.nvmlSystemGetDriverVersion())
        try:
            cuda = int(N.nvmlSystemGetCudaDriverVersion())
            cuda_text = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        except N.NVMLError:
            cuda_text = None
        count = N.nvmlDeviceGetCount()
        gpus = tuple(_read_gpu(N, i) for i in range(count))
    except NvmlError:
        raise
    except Exception as exc:  # noqa: BLE001 - _explain turns any NVML failure into one line
        raise _explain(exc) from None
    finally:
        with contextlib.suppress(Exception):  # shutting down must not hide the real outcome
            N.nvmlShutdown()
    if not gpus:
        raise NvmlError(
            "the NVIDIA driver is loaded but reports no GPUs",
            hint=f"check `nvidia-smi` and that the GPU is visible to this machine, {_NO_GPU_HINT}",
        )
    return GpuInventory(source="nvml", gpus=gpus, driver_version=driver, cuda_driver_version=cuda_text)


def _memory(N: Any, handle: Any) -> tuple[int, int, int, int | None]:
    """total, free, used, reserved (None when the driver has no v2 memory info)."""
    try:
        m = N.nvmlDeviceGetMemoryInfo(handle, version=N.nvmlMemory_v2)
        return int(m.total), int(m.free), int(m.used), int(m.reserved)
    except (N.NVMLError_FunctionNotFound, N.NVMLError_NotSupported, N.NVMLError_ArgumentVersionMismatch):
        m = N.nvmlDeviceGetMemoryInfo(handle)
        return int(m.total), int(m.free), int(m.used), None


def _processes(N: Any, handle: Any) -> tuple[GpuProcess, ...]:
    try:
        procs = N.nvmlDeviceGetComputeRunningProcesses(handle)
    except N.NVMLError:  # NotSupported on some boards, NoPermission in containers
        return ()
    out = []
    for p in procs:
        used = getattr(p, "usedGpuMemory", None)
        out.append(GpuProcess(int(p.pid), int(used) if used is not None else None))
    return tuple(out)


def _read_gpu(N: Any, index: int) -> Gpu:
    handle = N.nvmlDeviceGetHandleByIndex(index)
    total, free, used, reserved = _memory(N, handle)
    major, minor = N.nvmlDeviceGetCudaComputeCapability(handle)
    try:
        pci = _text(N.nvmlDeviceGetPciInfo(handle).busId)
    except N.NVMLError:
        pci = ""
    try:
        current, _pending = N.nvmlDeviceGetMigMode(handle)
        mig_enabled = current == N.NVML_DEVICE_MIG_ENABLE
    except N.NVMLError:  # NotSupported: not a MIG-capable GPU
        mig_enabled = False
    name = _text(N.nvmlDeviceGetName(handle))
    gpu = Gpu(
        index=index,
        name=name,
        uuid=_text(N.nvmlDeviceGetUUID(handle)),
        pci_bus_id=pci,
        memory_total_bytes=total,
        memory_free_bytes=free,
        memory_used_bytes=used,
        memory_reserved_bytes=reserved,
        compute_capability=(int(major), int(minor)),
        mig_enabled=mig_enabled,
        processes=_processes(N, handle),
    )
    if not mig_enabled:
        return gpu
    slices: list[Gpu] = []
    for j in range(N.nvmlDeviceGetMaxMigDeviceCount(handle)):
        try:
            mh = N.nvmlDeviceGetMigDeviceHandleByIndex(handle, j)
        except N.NVMLError_NotFound:
            continue
        m_total, m_free, m_used, m_reserved = _memory(N, mh)
        try:
            m_name = _text(N.nvmlDeviceGetName(mh))
        except N.NVMLError:
            m_name = f"{name} MIG {j}"
        slices.append(
            Gpu(
                index=index,
                mig_index=j,
                name=m_name,
                uuid=_text(N.nvmlDeviceGetUUID(mh)),
                pci_bus_id=pci,
                memory_total_bytes=m_total,
                memory_free_bytes=m_free,
                memory_used_bytes=m_used,
                # MIG slices have no driver reserve of their own to subtract.
                memory_reserved_bytes=m_reserved if m_reserved is not None else 0,
                compute_capability=(int(major), int(minor)),
            )
        )
    return replace(gpu, mig_devices=tuple(slices))


def load_inventory(spec: str | None = None) -> GpuInventory:
    """The inventory to plan for: `spec` (or $MODELWIZ_GPUS) when given, with the driver in
    $MODELWIZ_DRIVER (`--driver`); else NVML, which reads the driver itself."""
    if spec is None:
        spec = os.environ.get(GPUS_ENV) or None
    driver = os.environ.get(DRIVER_ENV) or None
    if spec is None:
        if driver:
            raise UsageError(
                "--driver describes another machine's driver; this one's is read from NVML",
                hint="give the GPUs too (--gpus 2xH100-80GB --driver 570.124.06), or leave out --driver",
            )
        return discover()
    return describe(spec, driver)
