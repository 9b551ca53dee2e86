"""A fake of the nvidia-ml-py functions the NVML layer calls, raising the real library's error classes."""

from __future__ import annotations

import threading
import types
from typing import Any

import pynvml

# Where the fake GPUs sit, and what they are called: GPU i of a fake machine (NVML index i, PCI bus order).
BUSES = (0x01, 0x41, 0x81, 0xC1, 0x21, 0x61, 0xA1, 0xE1)


def bus_id(index: int) -> str:
    return f"0000:{BUSES[index]:02x}:00.0"


def uuid(index: int) -> str:
    return f"GPU-{0x8932F937 + index:08x}-d72c-4106-c12f-20bd9faed9f{index:x}"


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)  # nvidia-ml-py returns the matching subclass (NVMLError_NotSupported, ...)


class FakeNvml(types.SimpleNamespace):
    """``gpus`` GPUs (one by default: an H100-like card); ``unsupported`` names functions that raise
    NotSupported, ``init_error`` makes nvmlInit fail with that NVML error code, ``handle_error`` makes
    opening a GPU fail (nvmlDeviceGetHandleByIndex: GpuIsLost for a GPU that fell off the bus). ``per_gpu``
    gives GPU i its own answers ({index: {function: value}}); ``hang`` names functions that block (a GPU
    whose firmware stopped answering) until ``release()``, as {function: GPU index or None for every GPU}."""

    def __init__(
        self,
        gpus: int = 1,
        unsupported: tuple[str, ...] = (),
        init_error: int | None = None,
        handle_error: int | None = None,
        events: list[int] | None = None,
        per_gpu: dict[int, dict[str, Any]] | None = None,
        hang: dict[str, int | None] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        for name in dir(pynvml):
            if name.startswith("NVML_") or name.startswith("NVMLError"):
                setattr(self, name, getattr(pynvml, name))
        self.gpus, self.init_error, self.handle_error, self.calls = gpus, init_error, handle_error, []
        self.events = list(events or [0])
        self.per_gpu, self.hang, self.released = per_gpu or {}, hang or {}, threading.Event()
        values: dict[str, Any] = {
            "nvmlSystemGetDriverVersion": "550.54.15",
            "nvmlSystemGetNVMLVersion": "12.550.54.15",
            "nvmlSystemGetCudaDriverVersion": 12040,
            "nvmlDeviceGetCount": gpus,
            "nvmlDeviceGetName": b"NVIDIA H100 80GB HBM3",
            "nvmlDeviceGetMemoryInfo": types.SimpleNamespace(total=80 * 2**30, used=2**30, free=79 * 2**30),
            "nvmlDeviceGetCudaComputeCapability": (9, 0),
            "nvmlDeviceGetCurrPcieLinkGeneration": 5,
            "nvmlDeviceGetMaxPcieLinkGeneration": 5,
            "nvmlDeviceGetCurrPcieLinkWidth": 16,
            "nvmlDeviceGetMaxPcieLinkWidth": 16,
            "nvmlDeviceGetTemperature": 41,
            "nvmlDeviceGetPowerUsage": 71500,
            "nvmlDeviceGetEnforcedPowerLimit": 700000,
            "nvmlDeviceGetClockInfo": 1980,
            "nvmlDeviceGetMaxClockInfo": 1980,
            "nvmlDeviceGetEccMode": [1, 1],
            "nvmlDeviceGetTotalEccErrors": 0,
            "nvmlDeviceGetRetiredPages": [],
            "nvmlDeviceGetRemappedRows": (0, 0, 0, 0),
            "nvmlDeviceGetMigMode": [0, 0],
            "nvmlDeviceGetMaxMigDeviceCount": 7,
            "nvmlDeviceGetMigDeviceHandleByIndex": nvml_error(pynvml.NVML_ERROR_NOT_FOUND),
            "nvmlDeviceGetComputeRunningProcesses": [],
            "nvmlDeviceGetGpuMaxPcieLinkGeneration": 5,
            "nvmlDeviceGetPersistenceMode": 1,
            "nvmlDeviceGetUtilizationRates": types.SimpleNamespace(gpu=97, memory=40),
            **overrides,
        }
        values.setdefault("nvmlDeviceGetUUID", None)  # per GPU below, unless overridden for all
        values.setdefault("nvmlDeviceGetPciInfo", None)
        for name, value in values.items():
            setattr(self, name, self._function(name, value, name in unsupported))

    def _answer(self, name: str, value: Any, index: int | None) -> Any:
        if index is not None and name in self.per_gpu.get(index, {}):
            return self.per_gpu[index][name]
        if value is None and name == "nvmlDeviceGetUUID":
            return uuid(index or 0)
        if value is None and name == "nvmlDeviceGetPciInfo":
            bus = BUSES[index or 0]
            return types.SimpleNamespace(
                busId=f"00000000:{bus:02X}:00.0".encode(), domain=0, bus=bus, device=0
            )
        return value

    def _function(self, name: str, value: Any, unsupported: bool) -> Any:
        def fn(*args: Any) -> Any:
            self.calls.append(name)
            handle = args[0] if args and isinstance(args[0], str) and args[0].startswith("handle") else None
            index = int(handle.removeprefix("handle")) if handle else None
            if name in self.hang and self.hang[name] in (None, index):
                self.released.wait(3600)  # a GPU whose firmware stopped answering
            if unsupported:
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            answer = self._answer(name, value, index)
            if isinstance(answer, BaseException):
                raise answer
            return answer

        return fn

    def release(self) -> None:
        """Let every hung call return (the test is over)."""
        self.released.set()

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if "nvmlInit" in self.hang:
            self.released.wait(3600)
        if self.init_error is not None:
            raise nvml_error(self.init_error)

    def nvmlShutdown(self) -> None:
        self.calls.append("nvmlShutdown")

    def nvmlDeviceGetHandleByIndex(self, index: int) -> str:
        self.calls.append("nvmlDeviceGetHandleByIndex")
        if self.handle_error is not None:
            raise nvml_error(self.handle_error)
        return f"handle{index}"

    def nvmlDeviceGetCurrentClocksEventReasons(self, handle: str) -> int:
        # Successive calls walk through self.events (the last one repeats): a GPU that starts to throttle.
        return self.events.pop(0) if len(self.events) > 1 else self.events[0]
