"""A fake of the nvidia-ml-py functions the NVML layer calls, raising the real library's error classes."""

from __future__ import annotations

import types
from typing import Any

import pynvml


def nvml_error(code: int) -> pynvml.NVMLError:
    return pynvml.NVMLError(code)  # nvidia-ml-py returns the matching subclass (NVMLError_NotSupported, ...)


def bus_id(index: int) -> str:
    """The staged PCI bus id of GPU `index`, as NVML writes it."""
    return f"00000000:{0x18 + 0x10 * index:02X}:00.0"


def pci_info(bus: str) -> types.SimpleNamespace:
    return types.SimpleNamespace(busId=bus.encode())  # nvmlPciInfo_t's busId: a C char array (bytes)


class FakeNvml(types.SimpleNamespace):
    """One GPU by default (an H100-like card); ``unsupported`` names functions that raise NotSupported,
    ``init_error`` makes nvmlInit fail with that NVML error code, ``handle_error`` makes opening a GPU fail
    (nvmlDeviceGetHandleByIndex: GpuIsLost for a GPU that fell off the bus). ``per_gpu`` overrides values for
    one GPU: ``{index: {"nvmlDeviceGetCurrPcieLinkWidth": 8}}``; each GPU has its own PCI bus id and UUID."""

    def __init__(
        self,
        gpus: int = 1,
        unsupported: tuple[str, ...] = (),
        init_error: int | None = None,
        handle_error: int | None = None,
        events: list[int] | None = None,
        per_gpu: dict[int, dict[str, Any]] | None = None,
        **overrides: Any,
    ) -> None:
        super().__init__()
        for name in dir(pynvml):
            if name.startswith("NVML_") or name.startswith("NVMLError"):
                setattr(self, name, getattr(pynvml, name))
        self.gpus, self.init_error, self.handle_error, self.calls = gpus, init_error, handle_error, []
        self.events = list(events or [0])
        # Each GPU's own identity, unless the caller gave one value for all; then `per_gpu`'s overrides.
        identity = {"nvmlDeviceGetPciInfo": lambda i: pci_info(bus_id(i)),
                    "nvmlDeviceGetUUID": lambda i: f"GPU-{i:04d}-fake",
                    "nvmlDeviceGetSerial": lambda i: f"165{i:010d}"}  # fmt: skip
        self.per_gpu = {
            i: {
                **{name: make(i) for name, make in identity.items() if name not in overrides},
                **(per_gpu or {}).get(i, {}),
            }
            for i in range(gpus)
        }
        values: dict[str, Any] = {
            "nvmlSystemGetDriverVersion": "550.54.15",
            "nvmlSystemGetNVMLVersion": "12.550.54.15",
            "nvmlSystemGetCudaDriverVersion": 12040,
            "nvmlDeviceGetCount": gpus,
            "nvmlDeviceGetName": b"NVIDIA H100 80GB HBM3",
            "nvmlDeviceGetUUID": "GPU-0000-fake",
            "nvmlDeviceGetPciInfo": pci_info(bus_id(0)),
            "nvmlDeviceGetSerial": "1650000000000",
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
        names = set(values) | {name for gpu in self.per_gpu.values() for name in gpu}
        for name in names:
            setattr(self, name, self._function(name, values.get(name), name in unsupported))

    def _function(self, name: str, default: Any, unsupported: bool) -> Any:
        def fn(*args: Any) -> Any:
            self.calls.append(name)
            if unsupported:
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            index = self.index_of(args[0]) if args else None
            value = self.per_gpu.get(index, {}).get(name, default) if index is not None else default
            if callable(value) and not isinstance(value, type):
                value = value(*args)  # a function of the arguments (links, peers)
            if isinstance(value, BaseException):
                raise value
            return value

        return fn

    @staticmethod
    def index_of(handle: Any) -> int | None:
        text = str(handle)
        return int(text.removeprefix("handle")) if text.startswith("handle") else None

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
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
