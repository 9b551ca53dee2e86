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


def serial(index: int) -> str:
    return f"165{index:010d}"


def pci_info(bus: str) -> types.SimpleNamespace:
    """nvmlPciInfo_t of the PCI address ``bus`` ("0000:41:00.0"): busId as NVML writes it (a C char array,
    eight digits of domain), and its numbers."""
    domain, number, rest = bus.split(":")
    return types.SimpleNamespace(
        busId=f"{int(domain, 16):08X}:{number.upper()}:{rest.upper()}".encode(),
        domain=int(domain, 16),
        bus=int(number, 16),
        device=int(rest.split(".")[0], 16),
    )


class FakeNvml(types.SimpleNamespace):
    """``gpus`` GPUs (one by default: an H100-like card); ``unsupported`` names functions that raise
    NotSupported, ``init_error`` makes nvmlInit fail with that NVML error code, ``handle_error`` makes
    opening a GPU fail (nvmlDeviceGetHandleByIndex: GpuIsLost for a GPU that fell off the bus). Each GPU has
    its own PCI bus id, UUID and serial (``bus_id(i)``, ``uuid(i)``, ``serial(i)``) unless an override gives
    one value for all; ``per_gpu`` gives GPU i its own answers ({index: {function: value}}); a value may be a
    function of the call's arguments (links, peers: ``topology()``). ``hang`` names functions that block (a
    GPU whose firmware stopped answering) until ``release()``, as {function: GPU index or None for every
    GPU}."""

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
        self.hang, self.released = hang or {}, threading.Event()
        # Each GPU's own identity, unless the caller gave one value for all; then `per_gpu`'s overrides.
        identity = {"nvmlDeviceGetPciInfo": lambda i: pci_info(bus_id(i)), "nvmlDeviceGetUUID": uuid,
                    "nvmlDeviceGetSerial": serial}  # fmt: skip
        self.per_gpu = {
            i: {
                **{name: make(i) for name, make in identity.items() if name not in overrides},
                **(per_gpu or {}).get(i, {}),
            }
            for i in range(max(gpus, 1 + max(per_gpu or {0: None})))
        }
        values: dict[str, Any] = {
            "nvmlSystemGetDriverVersion": "550.54.15",
            "nvmlSystemGetNVMLVersion": "12.550.54.15",
            "nvmlSystemGetCudaDriverVersion": 12040,
            "nvmlDeviceGetCount": gpus,
            "nvmlDeviceGetName": b"NVIDIA H100 80GB HBM3",
            "nvmlDeviceGetUUID": uuid(0),
            "nvmlDeviceGetPciInfo": pci_info(bus_id(0)),
            "nvmlDeviceGetSerial": serial(0),
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
            # One GPU, no NVLink (a PCIe card without a bridge): tests/smoke/fake_nvml.topology stages more.
            "nvmlDeviceGetNvLinkState": nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED),
            "nvmlDeviceGetP2PStatus": pynvml.NVML_P2P_STATUS_OK,
            "nvmlDeviceGetTopologyCommonAncestor": pynvml.NVML_TOPOLOGY_SINGLE,
            **overrides,
        }
        names = set(values) | {name for gpu in self.per_gpu.values() for name in gpu}
        for name in names:
            setattr(self, name, self._function(name, values.get(name), name in unsupported))

    def _function(self, name: str, default: Any, unsupported: bool) -> Any:
        def fn(*args: Any) -> Any:
            self.calls.append(name)
            index = self.index_of(args[0]) if args else None
            if name in self.hang and self.hang[name] in (None, index):
                self.released.wait(3600)  # a GPU whose firmware stopped answering
            if unsupported:
                raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
            value = self.per_gpu.get(index, {}).get(name, default) if index is not None else default
            if callable(value) and not isinstance(value, type):
                value = value(*args)  # a function of the arguments (links, peers)
            if isinstance(value, BaseException):
                raise value
            return value

        return fn

    def release(self) -> None:
        """Let every hung call return (the test is over)."""
        self.released.set()

    @staticmethod
    def index_of(handle: Any) -> int | None:
        text = str(handle)
        return int(text.removeprefix("handle")) if text.startswith("handle") else None

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


SWITCH_BUS = "00000000:05:00.0"


def topology(
    gpus: int,
    *,
    switch_links: int = 0,
    pair_links: dict[tuple[int, int], int] | None = None,
    down: set[tuple[int, int]] | frozenset = frozenset(),
    down_between: tuple[int, int] | None = None,
    version: int = pynvml.NVML_NVLINK_VERSION_4_0,
    path: int = pynvml.NVML_TOPOLOGY_NODE,
    p2p: int = pynvml.NVML_P2P_STATUS_OK,
) -> dict[str, Any]:
    """FakeNvml keyword arguments for a staged interconnect: each GPU has `switch_links` NVLinks to NVSwitches
    (HGX H100: 18) and `pair_links[(i, j)]` direct links to GPU j; `down` = {(gpu, link)} reports those links
    down, `down_between` = (i, j) one link between GPU i and GPU j, at both ends. Past a GPU's last link NVML
    answers InvalidArgument, as the real library does; a GPU without NVLink answers NotSupported."""
    table: dict[int, list[tuple[str, int]]] = {i: [(SWITCH_BUS, 2)] * switch_links for i in range(gpus)}
    for (i, j), count in (pair_links or {}).items():
        table[i] += [(bus_id(j), 0)] * count
        table[j] += [(bus_id(i), 0)] * count
    down = set(down)
    if down_between is not None:
        i, j = down_between
        down |= {(i, table[i].index((bus_id(j), 0))), (j, table[j].index((bus_id(i), 0)))}

    def link_of(handle: Any, link: int) -> tuple[int, tuple[str, int]]:
        index = FakeNvml.index_of(handle)
        assert index is not None
        if not table[index]:
            raise nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED)
        if link >= len(table[index]):
            raise nvml_error(pynvml.NVML_ERROR_INVALID_ARGUMENT)
        return index, table[index][link]

    def state(handle: Any, link: int) -> int:
        index, _ = link_of(handle, link)
        return pynvml.NVML_FEATURE_DISABLED if (index, link) in down else pynvml.NVML_FEATURE_ENABLED

    return {
        "nvmlDeviceGetNvLinkState": state,
        "nvmlDeviceGetNvLinkVersion": lambda handle, link: link_of(handle, link) and version,
        "nvmlDeviceGetNvLinkRemoteDeviceType": lambda handle, link: link_of(handle, link)[1][1],
        "nvmlDeviceGetNvLinkRemotePciInfo": lambda handle, link: pci_info(link_of(handle, link)[1][0]),
        "nvmlDeviceGetP2PStatus": lambda a, b, index: p2p,
        "nvmlDeviceGetTopologyCommonAncestor": lambda a, b: path,
    }
