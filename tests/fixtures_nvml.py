"""A fake NVML, installed onto the real `pynvml` module (nvidia-ml-py).

Only the device-facing functions are replaced; everything the caller sees is real: errors are
`pynvml.NVMLError(code)` (which the library maps to its own subclasses, e.g. NVMLError_NoPermission),
memory info is the library's own ctypes structs, and the functions raise where the real library
raises (nvmlInit for a missing library or an unloaded driver, v2 memory info on old drivers, ...).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import pynvml as N
import pytest

MiB = 1024**2


@dataclass
class FakeMig:
    uuid: str
    name: str
    total: int
    used: int = 0


@dataclass
class FakeGpu:
    name: str = "NVIDIA H100 80GB HBM3"
    uuid: str = "GPU-00000000-0000-0000-0000-000000000000"
    total: int = 81559 * MiB
    reserved: int = 479 * MiB
    used_by_processes: int = 0
    cc: tuple[int, int] = (9, 0)
    bus_id: str = "00000000:18:00.0"
    mig: list[FakeMig] | None = None  # None: MIG not supported; []: supported, disabled
    processes: list[tuple[int, int]] = field(default_factory=list)
    lost: bool = False  # NVML_ERROR_GPU_IS_LOST on every query


class FakeNvml:
    """State of the fake driver; `install(monkeypatch)` puts it in place on `pynvml`."""

    def __init__(
        self, gpus=(), *, driver="580.95.05", cuda=13000, init_error=None, v2_memory=True, permission_error_on=None
    ):
        self.gpus = list(gpus)
        self.driver = driver
        self.cuda = cuda
        self.init_error = init_error  # an NVML_ERROR_* code raised by nvmlInit
        self.v2_memory = v2_memory  # False: an old driver without nvmlDeviceGetMemoryInfo_v2
        self.permission_error_on = permission_error_on  # function name that raises NoPermission
        self.initialized = False
        self.shutdowns = 0
        self.calls: dict[str, int] = {}  # API function -> times called

    # -- helpers
    def _check(self, fn):
        self.calls[fn] = self.calls.get(fn, 0) + 1
        if not self.initialized:
            raise N.NVMLError(N.NVML_ERROR_UNINITIALIZED)
        if self.permission_error_on == fn:
            raise N.NVMLError(N.NVML_ERROR_NO_PERMISSION)

    def _gpu(self, handle):
        kind, i, j = handle
        gpu = self.gpus[i]
        if gpu.lost:
            raise N.NVMLError(N.NVML_ERROR_GPU_IS_LOST)
        return gpu, (gpu.mig[j] if kind == "mig" else None)

    # -- the API
    def nvmlInit(self):
        self.calls["nvmlInit"] = self.calls.get("nvmlInit", 0) + 1
        if self.init_error is not None:
            raise N.NVMLError(self.init_error)
        self.initialized = True

    def nvmlShutdown(self):
        self._check("nvmlShutdown")
        self.initialized = False
        self.shutdowns += 1

    def nvmlSystemGetDriverVersion(self):
        self._check("nvmlSystemGetDriverVersion")
        return self.driver

    def nvmlSystemGetCudaDriverVersion(self):
        self._check("nvmlSystemGetCudaDriverVersion")
        return self.cuda

    def nvmlDeviceGetCount(self):
        self._check("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index):
        self._check("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise N.NVMLError(N.NVML_ERROR_INVALID_ARGUMENT)
        if self.gpus[index].lost:
            raise N.NVMLError(N.NVML_ERROR_GPU_IS_LOST)
        return ("gpu", index, None)

    def nvmlDeviceGetName(self, handle):
        self._check("nvmlDeviceGetName")
        gpu, mig = self._gpu(handle)
        return (mig or gpu).name

    def nvmlDeviceGetUUID(self, handle):
        self._check("nvmlDeviceGetUUID")
        gpu, mig = self._gpu(handle)
        return (mig or gpu).uuid

    def nvmlDeviceGetPciInfo(self, handle):
        self._check("nvmlDeviceGetPciInfo")
        gpu, _ = self._gpu(handle)
        info = N.nvmlPciInfo_t()
        info.busId = gpu.bus_id.encode()
        return info

    def nvmlDeviceGetCudaComputeCapability(self, handle):
        self._check("nvmlDeviceGetCudaComputeCapability")
        gpu, _ = self._gpu(handle)
        return gpu.cc

    def nvmlDeviceGetMemoryInfo(self, handle, version=None):
        self._check("nvmlDeviceGetMemoryInfo")
        gpu, mig = self._gpu(handle)
        if mig is not None:
            total, reserved, used = mig.total, 0, mig.used
        else:
            total, reserved = gpu.total, gpu.reserved
            used = reserved + gpu.used_by_processes + sum(m for _, m in gpu.processes)
        if version:
            if not self.v2_memory:  # the driver lacks the _v2 entry point
                raise N.NVMLError(N.NVML_ERROR_FUNCTION_NOT_FOUND)
            m = N.c_nvmlMemory_v2_t()
            m.version, m.total, m.reserved, m.free, m.used = version, total, reserved, total - used, used
            return m
        m = N.c_nvmlMemory_t()
        m.total, m.free, m.used = total, total - used, used
        return m

    def nvmlDeviceGetMigMode(self, handle):
        self._check("nvmlDeviceGetMigMode")
        gpu, _ = self._gpu(handle)
        if gpu.mig is None:
            raise N.NVMLError(N.NVML_ERROR_NOT_SUPPORTED)
        mode = N.NVML_DEVICE_MIG_ENABLE if gpu.mig else N.NVML_DEVICE_MIG_DISABLE
        return [mode, mode]

    def nvmlDeviceGetMaxMigDeviceCount(self, handle):
        self._check("nvmlDeviceGetMaxMigDeviceCount")
        return 7

    def nvmlDeviceGetMigDeviceHandleByIndex(self, handle, index):
        self._check("nvmlDeviceGetMigDeviceHandleByIndex")
        gpu, _ = self._gpu(handle)
        if not gpu.mig or index >= len(gpu.mig):
            raise N.NVMLError(N.NVML_ERROR_NOT_FOUND)
        return ("mig", handle[1], index)

    def nvmlDeviceGetComputeRunningProcesses(self, handle):
        self._check("nvmlDeviceGetComputeRunningProcesses")
        gpu, _ = self._gpu(handle)
        out = []
        for pid, used in gpu.processes:
            p = N.c_nvmlProcessInfo_v3_t() if hasattr(N, "c_nvmlProcessInfo_v3_t") else N.c_nvmlProcessInfo_t()
            p.pid, p.usedGpuMemory = pid, used
            out.append(p)
        return out

    API = (
        "nvmlInit",
        "nvmlShutdown",
        "nvmlSystemGetDriverVersion",
        "nvmlSystemGetCudaDriverVersion",
        "nvmlDeviceGetCount",
        "nvmlDeviceGetHandleByIndex",
        "nvmlDeviceGetName",
        "nvmlDeviceGetUUID",
        "nvmlDeviceGetPciInfo",
        "nvmlDeviceGetCudaComputeCapability",
        "nvmlDeviceGetMemoryInfo",
        "nvmlDeviceGetMigMode",
        "nvmlDeviceGetMaxMigDeviceCount",
        "nvmlDeviceGetMigDeviceHandleByIndex",
        "nvmlDeviceGetComputeRunningProcesses",
    )

    def install(self, monkeypatch) -> FakeNvml:
        for name in self.API:
            monkeypatch.setattr(N, name, getattr(self, name))
        return self


def h100(i: int, **kw) -> FakeGpu:
    return FakeGpu(uuid=f"GPU-{i:08d}-aaaa-bbbb-cccc-{i:012d}", bus_id=f"00000000:{0x18 + i:02X}:00.0", **kw)


@pytest.fixture
def fake_nvml(monkeypatch):
    """Call with the fake's arguments; returns the installed FakeNvml."""

    def install(gpus=(), **kwargs) -> FakeNvml:
        return FakeNvml(gpus, **kwargs).install(monkeypatch)

    return install
