"""NVML layer: system facts and telemetry through the official nvidia-ml-py (import name ``pynvml``).

Every function takes the NVML module as a parameter so the unit tests can pass a fake. A query a GPU
does not support (NotSupported on consumer cards, WSL, vGPU) becomes ``"n/a"``, never an exception.
"""

from __future__ import annotations

import threading
import time
from types import ModuleType
from typing import Any

NA = "n/a"

# Errors that mean "this GPU or driver does not offer this query": reported as n/a.
_NA_ERRORS = (
    "NVMLError_NotSupported",
    "NVMLError_FunctionNotFound",
    "NVMLError_NotFound",
    "NVMLError_NoData",
)

# Why NVML could not start, in words a user can act on (keyed by the nvidia-ml-py error class name).
INIT_REASONS = {
    "NVMLError_LibraryNotFound": (
        "NVML library (libnvidia-ml.so.1) not found: no NVIDIA driver installed, or a container started "
        "without --gpus all (NVIDIA Container Toolkit)"
    ),
    "NVMLError_DriverNotLoaded": (
        "the NVIDIA kernel driver is not loaded: reboot after installing it, "
        "check `dkms status` and Secure Boot"
    ),
    "NVMLError_LibRmVersionMismatch": (
        "driver/library version mismatch: the NVML library does not match the loaded kernel module "
        "(driver upgraded without a reboot): reboot"
    ),
    "NVMLError_NoPermission": "no permission to open /dev/nvidia*: add the user to the video/render group",
    "NVMLError_GpuIsLost": "a GPU fell off the bus (GPU is lost): check `dmesg` for Xid errors, reboot",
}

# Clock-event (throttle) reason bits, from nvidia-ml-py's nvmlClocksEventReason* constants.
CLOCK_EVENT_REASONS = {
    "gpu_idle": 0x1,
    "applications_clocks_setting": 0x2,
    "sw_power_cap": 0x4,
    "hw_slowdown": 0x8,
    "sync_boost": 0x10,
    "sw_thermal_slowdown": 0x20,
    "hw_thermal_slowdown": 0x40,
    "hw_power_brake_slowdown": 0x80,
    "display_clock_setting": 0x100,
}


def _import_nvml() -> ModuleType:
    import pynvml  # the official nvidia-ml-py package provides this module

    return pynvml


def _error_name(err: BaseException) -> str:
    return type(err).__name__


def query(fn: Any, *args: Any) -> Any:
    """Call one NVML function; unsupported queries give "n/a", other NVML errors "error: ..."."""
    try:
        value = fn(*args)
    except Exception as err:
        if _error_name(err) in _NA_ERRORS:
            return NA
        if _error_name(err) == "NVMLError_NoPermission":
            return f"{NA} (no permission)"
        if _error_name(err).startswith("NVMLError"):
            return f"error: {err}"
        raise
    return value.decode() if isinstance(value, bytes) else value


def init_reason(err: BaseException) -> str:
    """A one-line explanation of why nvmlInit failed."""
    return INIT_REASONS.get(_error_name(err), f"NVML failed to start: {err}")


def decode_clock_events(mask: Any) -> list[str] | str:
    if not isinstance(mask, int):
        return mask if isinstance(mask, str) else NA
    return [name for name, bit in CLOCK_EVENT_REASONS.items() if mask & bit]


def _cuda_version(raw: Any) -> str:
    # nvmlSystemGetCudaDriverVersion gives 12040 for CUDA 12.4.
    return f"{raw // 1000}.{(raw % 1000) // 10}" if isinstance(raw, int) else raw


def _mib(value: Any) -> Any:
    return round(value / 2**20) if isinstance(value, int) else value


def _watts(milliwatts: Any) -> Any:
    return round(milliwatts / 1000, 1) if isinstance(milliwatts, int | float) else milliwatts


def _pair(value: Any) -> tuple[Any, Any]:
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


def gpu_info(nvml: ModuleType, index: int) -> dict[str, Any]:
    """Everything the smoke tests report about one GPU; unsupported fields are "n/a"."""
    h = nvml.nvmlDeviceGetHandleByIndex(index)
    mem = query(nvml.nvmlDeviceGetMemoryInfo, h)
    cc = query(nvml.nvmlDeviceGetCudaComputeCapability, h)
    ecc_current, ecc_pending = _pair(query(nvml.nvmlDeviceGetEccMode, h))
    mig_current, mig_pending = _pair(query(nvml.nvmlDeviceGetMigMode, h))
    remap = query(nvml.nvmlDeviceGetRemappedRows, h)
    retired: dict[str, Any] = {}
    for cause, const in (("double_bit", 1), ("multiple_single_bit", 0)):
        pages = query(nvml.nvmlDeviceGetRetiredPages, h, const)
        retired[cause] = len(pages) if isinstance(pages, list | tuple) else pages
    clocks = {}
    for name, const in (("sm", nvml.NVML_CLOCK_SM), ("mem", nvml.NVML_CLOCK_MEM)):
        clocks[f"{name}_mhz"] = query(nvml.nvmlDeviceGetClockInfo, h, const)
        clocks[f"{name}_max_mhz"] = query(nvml.nvmlDeviceGetMaxClockInfo, h, const)
    return {
        "index": index,
        "name": query(nvml.nvmlDeviceGetName, h),
        "uuid": query(nvml.nvmlDeviceGetUUID, h),
        "memory_total_mib": _mib(mem.total) if hasattr(mem, "total") else mem,
        "memory_used_mib": _mib(mem.used) if hasattr(mem, "used") else mem,
        "compute_capability": f"{cc[0]}.{cc[1]}" if isinstance(cc, tuple | list) else cc,
        "pcie": {
            "gen_current": query(nvml.nvmlDeviceGetCurrPcieLinkGeneration, h),
            "gen_max": query(nvml.nvmlDeviceGetMaxPcieLinkGeneration, h),
            "width_current": query(nvml.nvmlDeviceGetCurrPcieLinkWidth, h),
            "width_max": query(nvml.nvmlDeviceGetMaxPcieLinkWidth, h),
        },
        "temperature_c": query(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU),
        "power_w": _watts(query(nvml.nvmlDeviceGetPowerUsage, h)),
        "power_limit_w": _watts(query(nvml.nvmlDeviceGetEnforcedPowerLimit, h)),
        "clocks": clocks,
        "clock_events": decode_clock_events(query(nvml.nvmlDeviceGetCurrentClocksEventReasons, h)),
        "ecc_mode": {"current": ecc_current, "pending": ecc_pending},
        "ecc_uncorrected_volatile": query(
            nvml.nvmlDeviceGetTotalEccErrors,
            h,
            nvml.NVML_MEMORY_ERROR_TYPE_UNCORRECTED,
            nvml.NVML_VOLATILE_ECC,
        ),
        "retired_pages": retired,
        "remapped_rows": (
            dict(zip(("correctable", "uncorrectable", "pending", "failure"), remap, strict=False))
            if isinstance(remap, tuple | list)
            else remap
        ),
        "mig_mode": {"current": mig_current, "pending": mig_pending},
        "persistence_mode": query(nvml.nvmlDeviceGetPersistenceMode, h),
    }


def probe(nvml: ModuleType | None = None) -> dict[str, Any]:
    """Load NVML and describe the system: {"available", "reason", driver and CUDA driver versions, "gpus"}."""
    info: dict[str, Any] = {"available": False, "reason": None, "gpus": []}
    if nvml is None:
        try:
            nvml = _import_nvml()
        except ImportError:
            info["reason"] = "nvidia-ml-py is not installed in this environment (make setup)"
            return info
    try:
        nvml.nvmlInit()
    except Exception as err:
        if not _error_name(err).startswith("NVMLError"):
            raise
        info["reason"] = init_reason(err)
        return info
    try:
        info["driver_version"] = query(nvml.nvmlSystemGetDriverVersion)
        info["nvml_version"] = query(nvml.nvmlSystemGetNVMLVersion)
        info["cuda_driver_version"] = _cuda_version(query(nvml.nvmlSystemGetCudaDriverVersion))
        count = query(nvml.nvmlDeviceGetCount)
        if not isinstance(count, int) or count == 0:
            info["reason"] = f"NVML started but reports no GPU (device count: {count})"
            return info
        info["gpus"] = [gpu_info(nvml, i) for i in range(count)]
        info["available"] = True
    finally:
        query(nvml.nvmlShutdown)
    return info


def gpu_health_problems(gpu: dict[str, Any]) -> list[str]:
    """Faults that make a GPU untrustworthy (DCGM treats these as failures)."""
    problems = []
    if isinstance(gpu.get("ecc_uncorrected_volatile"), int) and gpu["ecc_uncorrected_volatile"] > 0:
        problems.append(f"{gpu['ecc_uncorrected_volatile']} uncorrected ECC errors since boot")
    rows = gpu.get("remapped_rows")
    if isinstance(rows, dict):
        if rows.get("failure"):
            problems.append("row remapping failed: the GPU needs service")
        if rows.get("pending"):
            problems.append("row remapping pending: reset the GPU or reboot")
    pages = gpu.get("retired_pages", {})
    if isinstance(pages.get("double_bit"), int) and pages["double_bit"] > 0:
        problems.append(f"{pages['double_bit']} pages retired for double-bit ECC errors")
    for key, value in gpu.items():
        if isinstance(value, str) and value.startswith("error:"):
            problems.append(f"{key}: {value}")
    return problems


def gpu_warnings(gpu: dict[str, Any]) -> list[str]:
    """Conditions worth a look that do not fail the check."""
    warnings = []
    pcie = gpu.get("pcie", {})
    cur, top = pcie.get("width_current"), pcie.get("width_max")
    if isinstance(cur, int) and isinstance(top, int) and cur < top:
        warnings.append(f"PCIe link width x{cur} of x{top}: check the slot or riser")
    if gpu.get("ecc_mode", {}).get("current") != gpu.get("ecc_mode", {}).get("pending"):
        warnings.append("ECC mode change pending a reboot")
    if gpu.get("mig_mode", {}).get("current") == 1:
        warnings.append("MIG is enabled: frameworks see MIG slices, speed figures are per slice")
    return warnings


class TelemetrySampler:
    """Samples NVML telemetry of one GPU in a background thread during a timed window.

    Use as a context manager; ``samples`` holds dicts with t (seconds since start), util_pct, sm_mhz,
    power_w, temperature_c and clock_events (list of reason names).
    """

    def __init__(self, index: int = 0, interval_s: float = 0.1, nvml: ModuleType | None = None) -> None:
        self.index, self.interval_s = index, interval_s
        self.nvml = nvml if nvml is not None else _import_nvml()
        self.samples: list[dict[str, Any]] = []
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def sample(self) -> dict[str, Any]:
        nvml, h = self.nvml, self._handle
        util = query(nvml.nvmlDeviceGetUtilizationRates, h)
        return {
            "util_pct": getattr(util, "gpu", util),
            "sm_mhz": query(nvml.nvmlDeviceGetClockInfo, h, nvml.NVML_CLOCK_SM),
            "power_w": _watts(query(nvml.nvmlDeviceGetPowerUsage, h)),
            "temperature_c": query(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU),
            "clock_events": decode_clock_events(query(nvml.nvmlDeviceGetCurrentClocksEventReasons, h)),
        }

    def _record(self) -> None:
        self.samples.append({"t": round(time.perf_counter() - self._start, 3), **self.sample()})

    def _run(self) -> None:
        while True:
            self._record()
            if self._stop.wait(self.interval_s):
                break

    def __enter__(self) -> TelemetrySampler:
        self.nvml.nvmlInit()
        self._handle = self.nvml.nvmlDeviceGetHandleByIndex(self.index)
        self._start = time.perf_counter()
        self._thread = threading.Thread(target=self._run, name="nvml-telemetry", daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._record()  # one more at the end: throttling that starts late in the window counts too
        query(self.nvml.nvmlShutdown)
