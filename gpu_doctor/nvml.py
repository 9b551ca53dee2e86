"""NVML (nvidia-ml-py, import name ``pynvml``): the NVML, memory and health layers, and telemetry sampling.

Every call that can fail is guarded: a query a GPU does not support (NotSupported on consumer cards, WSL,
vGPU) becomes ``"n/a"``; any other NVML error becomes ``"error: ..."`` in the facts, never an exception. Every
call is bounded in time (gpu_doctor.bounded): a GPU that does not answer is named, and the diagnosis goes on.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

from gpu_doctor import bounded, devices, environment, kernel_log, rules
from gpu_doctor.context import Context
from gpu_doctor.cuda import HUNG_REMEDY
from gpu_doctor.model import OK, Layer
from gpu_doctor.system import import_pynvml

NA = "n/a"

# Errors that mean "this GPU or driver does not offer this query": reported as n/a.
_NA_ERRORS = (
    "NVMLError_NotSupported",
    "NVMLError_FunctionNotFound",
    "NVMLError_NotFound",
    "NVMLError_NoData",
)

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


def _error_name(err: BaseException) -> str:
    return type(err).__name__


def _is_nvml_error(err: BaseException) -> bool:
    return _error_name(err).startswith("NVMLError")


def query(fn: Any, *args: Any) -> Any:
    """Call one NVML function; unsupported queries (or a binding without it: None) give "n/a", other NVML
    errors "error: ..."."""
    if fn is None:
        return NA
    try:
        value = fn(*args)
    except Exception as err:
        if _error_name(err) in _NA_ERRORS:
            return NA
        if _error_name(err) == "NVMLError_NoPermission":
            return f"{NA} (no permission)"
        if _is_nvml_error(err):
            return f"error: {err}"
        raise
    return value.decode() if isinstance(value, bytes) else value


def decode_clock_events(mask: Any) -> list[str] | str:
    if not isinstance(mask, int):
        return mask if isinstance(mask, str) else NA
    return [name for name, bit in CLOCK_EVENT_REASONS.items() if mask & bit]


def _mib(value: Any) -> Any:
    return round(value / 2**20) if isinstance(value, int) else value


def watts(milliwatts: Any) -> Any:
    return round(milliwatts / 1000, 1) if isinstance(milliwatts, int | float) else milliwatts


def _pair(value: Any) -> tuple[Any, Any]:
    return tuple(value) if isinstance(value, list | tuple) else (value, value)


def _processes(nvml: ModuleType, h: Any) -> list[dict[str, Any]] | str:
    procs = query(getattr(nvml, "nvmlDeviceGetComputeRunningProcesses", None), h)
    if not isinstance(procs, list | tuple):
        return procs
    return [
        {"pid": getattr(p, "pid", None), "used_mib": _mib(getattr(p, "usedGpuMemory", None))} for p in procs
    ]


def _mig_devices(nvml: ModuleType, h: Any) -> list[str] | str:
    """The UUIDs of a MIG-enabled GPU's MIG devices (what CUDA_VISIBLE_DEVICES=MIG-... names)."""
    top = query(getattr(nvml, "nvmlDeviceGetMaxMigDeviceCount", None), h)
    if not isinstance(top, int):
        return top
    found = []
    for i in range(top):
        mig = query(getattr(nvml, "nvmlDeviceGetMigDeviceHandleByIndex", None), h, i)
        if not isinstance(mig, str):
            uuid = query(nvml.nvmlDeviceGetUUID, mig)
            found.append(uuid if isinstance(uuid, str) else f"MIG device {i}")
    return found


def _pci_bus_id(nvml: ModuleType, h: Any) -> str:
    """The GPU's PCI address in sysfs form ("0000:01:00.0"): how NVML's GPUs, CUDA's devices, sysfs and the
    kernel log's Xid lines are matched (gpu_doctor.devices)."""
    info = query(getattr(nvml, "nvmlDeviceGetPciInfo", None), h)
    if isinstance(info, str):
        return info
    found = devices.normalize_bus_id(getattr(info, "busId", None))
    if found is None and isinstance(getattr(info, "bus", None), int):
        found = devices.normalize_bus_id(f"{info.domain:x}:{info.bus:x}:{info.device:x}")
    return found or NA


def gpu_info(nvml: ModuleType, index: int) -> dict[str, Any]:
    """Everything reported about one GPU; unsupported fields are "n/a". A GPU NVML cannot open (GpuIsLost,
    Xid 79) gives {"index", "error", "error_name"} instead of an exception."""
    try:
        h = nvml.nvmlDeviceGetHandleByIndex(index)
    except Exception as err:
        if not _is_nvml_error(err):
            raise
        return {
            "index": index,
            "name": NA,
            "error": str(err) or _error_name(err),
            "error_name": _error_name(err),
        }
    mem = query(nvml.nvmlDeviceGetMemoryInfo, h)
    cc = query(nvml.nvmlDeviceGetCudaComputeCapability, h)
    ecc_current, ecc_pending = _pair(query(nvml.nvmlDeviceGetEccMode, h))
    mig_current, mig_pending = _pair(query(nvml.nvmlDeviceGetMigMode, h))
    remap = query(nvml.nvmlDeviceGetRemappedRows, h)
    migs = _mig_devices(nvml, h) if mig_current == 1 else NA
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
        "pci_bus_id": _pci_bus_id(nvml, h),
        "serial": query(getattr(nvml, "nvmlDeviceGetSerial", None), h),
        "memory_total_mib": _mib(mem.total) if hasattr(mem, "total") else mem,
        "memory_used_mib": _mib(mem.used) if hasattr(mem, "used") else mem,
        "memory_free_mib": _mib(mem.free) if hasattr(mem, "free") else mem,
        "processes": _processes(nvml, h),
        "compute_capability": f"{cc[0]}.{cc[1]}" if isinstance(cc, tuple | list) else cc,
        "pcie": {
            "gen_current": query(nvml.nvmlDeviceGetCurrPcieLinkGeneration, h),
            "gen_max": query(nvml.nvmlDeviceGetMaxPcieLinkGeneration, h),
            "gen_gpu_max": query(getattr(nvml, "nvmlDeviceGetGpuMaxPcieLinkGeneration", None), h),
            "width_current": query(nvml.nvmlDeviceGetCurrPcieLinkWidth, h),
            "width_max": query(nvml.nvmlDeviceGetMaxPcieLinkWidth, h),
        },
        "temperature_c": query(nvml.nvmlDeviceGetTemperature, h, nvml.NVML_TEMPERATURE_GPU),
        "power_w": watts(query(nvml.nvmlDeviceGetPowerUsage, h)),
        "power_limit_w": watts(query(nvml.nvmlDeviceGetEnforcedPowerLimit, h)),
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
        "mig_instances": len(migs) if isinstance(migs, list) else migs,
        "mig_uuids": migs if isinstance(migs, list) else [],
        "persistence_mode": query(nvml.nvmlDeviceGetPersistenceMode, h),
    }


class _Watched:
    """The NVML module, telling the watch which function runs now (named when one hangs)."""

    def __init__(self, module: Any, watch: bounded.Watch) -> None:
        self._module, self._watch = module, watch

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if not (name.startswith("nvml") and callable(value)):
            return value

        def call(*args: Any) -> Any:
            self._watch.calling(name)
            return value(*args)

        return call


def _topology(nvml: ModuleType, gpus: list[dict[str, Any]]) -> dict[str, Any]:
    """NVLink links and per-pair P2P and PCIe paths (gpu_doctor/topology.py); an NVML error there is a fact of
    the topology, never a reason to lose the rest of the picture."""
    from gpu_doctor import topology

    try:
        return topology.probe(nvml, gpus)
    except Exception as err:
        if not _is_nvml_error(err):
            raise
        return {"error": f"{_error_name(err)}: {err}", "gpus": [], "pairs": []}


def empty_picture() -> dict[str, Any]:
    return {"available": False, "reason": None, "error": None, "remedy": None, "gpus": []}


def probe(
    nvml: ModuleType | None = None,
    where: str = "host",
    watch: bounded.Watch | None = None,
    limits: dict[str, float] | None = None,
    info: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Load NVML and describe the system: {"available", "reason", "error", driver and CUDA versions, "gpus"}.

    Never raises: a failure to start gives "available": False with the reason (and its remedy) in words. Each
    step (the start, each GPU) is announced to ``watch`` with its budget from ``limits``; ``info`` is filled
    as it goes, so a caller that gives up on a hung GPU keeps the GPUs that answered."""
    info = empty_picture() if info is None else info
    limits = limits or rules.timeouts()
    watch = watch or bounded.Watch(limits["nvml_start_s"])
    if nvml is None:
        try:
            nvml = import_pynvml()
        except ImportError:
            info["reason"] = "nvidia-ml-py is not installed in this environment"
            info["remedy"] = environment.install("nvidia-ml-py", Path(sys.prefix), os.environ)
            return info
    nvml = _Watched(nvml, watch)  # type: ignore[assignment]
    watch.step("NVML's start", limits["nvml_start_s"])
    try:
        nvml.nvmlInit()
    except Exception as err:
        info["error"] = _error_name(err)
        explained = rules.nvml_init_error(_error_name(err), where)
        info["reason"], info["remedy"] = explained["cause"], explained["remedy"]
        if info["reason"].startswith("NVML failed to start"):
            info["reason"] = f"NVML failed to start: {err}"
        return info
    try:
        watch.step("NVML", limits["nvml_gpu_s"])
        info["driver_version"] = query(nvml.nvmlSystemGetDriverVersion)
        info["nvml_version"] = query(nvml.nvmlSystemGetNVMLVersion)
        raw = query(nvml.nvmlSystemGetCudaDriverVersion)
        info["cuda_driver_version"] = rules.cuda_from_int(raw) or raw
        count = query(nvml.nvmlDeviceGetCount)
        if not isinstance(count, int) or count == 0:
            info["reason"] = f"NVML started but reports no GPU (device count: {count})"
            return info
        for i in range(count):
            watch.step(f"GPU {i}", limits["nvml_gpu_s"])
            info["gpus"].append(gpu_info(nvml, i))  # type: ignore[arg-type]
        info["available"] = True
        watch.step("the GPUs' NVLink and P2P topology", limits["nvml_gpu_s"])
        info["topology"] = _topology(nvml, info["gpus"])
    except Exception as err:  # an NVML error outside `query` (a broken binding): a reason, not a crash
        if not _is_nvml_error(err):
            raise
        info["error"], info["reason"] = _error_name(err), f"NVML failed: {err}"
    finally:
        watch.step("NVML's shut-down", limits["nvml_gpu_s"])
        query(nvml.nvmlShutdown)
    return info


# --- Layers -------------------------------------------------------------------------------------------------
def nvml_layer(ctx: Context) -> Layer:
    layer = Layer("nvml")
    try:
        module = ctx.boundary.nvml()
    except ImportError:
        ctx.nvml = {
            "available": False,
            "gpus": [],
            "error": "ImportError",
            "reason": "nvidia-ml-py is not installed in this environment",
            "remedy": f"{ctx.build.install_gpu} (nvidia-ml-py is in the lock's dependencies)",
        }
    else:
        ctx.nvml = bounded_probe(module, ctx.where, rules.timeouts(ctx.boundary.timeouts))
        if ctx.nvml.get("hung"):
            return _unanswered(ctx, layer)
    info = ctx.nvml
    layer.facts = {k: v for k, v in info.items() if k != "gpus"}
    if info.get("error") and not info["gpus"]:
        return layer.broken(
            info["reason"],
            info["remedy"] or "see sudo dmesg | grep -i nvrm",
            summary=f"NVML did not start ({info['error']})",
        )
    lost = [g for g in info["gpus"] if g.get("error")]
    if lost:
        g = lost[0]
        explained = rules.nvml_init_error(g["error_name"], ctx.where)
        return layer.broken(
            f"GPU {g['index']}: {explained['cause']} (NVML: {g['error']})",
            explained["remedy"],
            summary=f"NVML cannot open GPU {g['index']}",
        )
    if not info["gpus"]:
        hidden = ctx.boundary.env.get("NVIDIA_VISIBLE_DEVICES")
        if ctx.container and hidden in ("none", "void", ""):
            return layer.broken(
                f"NVIDIA_VISIBLE_DEVICES={hidden!r} gives this container no GPU",
                "start it with NVIDIA_VISIBLE_DEVICES=all (the image's default) and --gpus all",
            )
        return layer.broken(
            f"{info['reason']}, although the PCI bus has {len(ctx.pci_gpus)} NVIDIA GPU(s)",
            "sudo dmesg | grep NVRM (the driver may not support this GPU); nvidia-smi",
        )
    for g in info["gpus"]:
        if g["mig_mode"]["current"] == 1 and g.get("mig_instances") == 0:
            return layer.broken(
                f"MIG is enabled on GPU {g['index']} ({g['name']}) but it has no MIG instance: CUDA sees "
                "no device there",
                f"create instances (sudo nvidia-smi mig -i {g['index']} -cgi 19 -C) or turn MIG off (sudo "
                f"nvidia-smi -i {g['index']} -mig 0, then reset the GPU)",
                summary=f"GPU {g['index']}: MIG on, no instance",
            )
    layer.status = OK
    names = ", ".join(f"{g['name']} (cc {g['compute_capability']})" for g in info["gpus"])
    layer.summary = f"driver {info.get('driver_version')} (CUDA {info.get('cuda_driver_version')}): {names}"
    if len(info["gpus"]) < len(ctx.pci_gpus) and not ctx.container:
        layer.warn(
            f"NVML lists {len(info['gpus'])} of the {len(ctx.pci_gpus)} NVIDIA GPUs on the PCI bus",
            "sudo dmesg | grep NVRM",
        )
    return layer


def bounded_probe(
    nvml: ModuleType | None = None, where: str = "host", limits: dict[str, float] | None = None
) -> dict[str, Any]:
    """``probe`` in a thread with a time limit per step: what every caller outside a test uses. A GPU (or
    NVML's start) that does not answer in time is left behind, and the picture says so: "available" False,
    "hung" {"what", "call", "budget_s"}, the reason in words, and the GPUs that did answer."""
    limits, info = limits or rules.timeouts(), empty_picture()
    try:
        bounded.run(lambda watch: probe(nvml, where, watch, limits, info), limits["nvml_start_s"], "NVML")
    except bounded.Unanswered as hung:
        answered = [dict(g) for g in list(info["gpus"])]  # the thread may still write: a copy
        where_in = f" (in {hung.call})" if hung.call else ""
        return {
            **{k: v for k, v in info.items() if k != "gpus"},
            "gpus": answered,
            "available": False,
            "error": "Timeout",
            "hung": {"what": hung.what, "call": hung.call, "budget_s": hung.budget_s},
            "reason": f"{hung.what} did not answer NVML within {hung.budget_s:g} s{where_in}: a firmware "
            "(GSP) hang?",
            "remedy": HUNG_REMEDY,
        }
    return info


def _unanswered(ctx: Context, layer: Layer) -> Layer:
    """A GPU (or NVML's start) that did not answer within its budget: named, with the kernel log's Xid errors
    when there are some (NVIDIA/open-gpu-kernel-modules#446: GSP RPC time-outs, Xid 119)."""
    hung = ctx.nvml["hung"]
    xids = kernel_log.read_xids(ctx.boundary) or []
    if xids:
        ctx.nvml["reason"] += f" The kernel log has {kernel_log.summary(xids[-20:])}"
    layer.facts = {k: v for k, v in ctx.nvml.items() if k != "gpus"}
    return layer.broken(
        ctx.nvml["reason"],
        HUNG_REMEDY,
        summary=f"{hung['what']} did not answer within {hung['budget_s']:g} s",
    )


def _process_names(ctx: Context, procs: list[dict[str, Any]]) -> str:
    parts = []
    for p in procs:
        name = ctx.boundary.read("proc", str(p["pid"]), "comm") or "?"
        parts.append(f"PID {p['pid']} {name} ({p['used_mib']} MiB)")
    return ", ".join(parts)


def memory_layer(ctx: Context) -> Layer:
    layer, limits = Layer("memory", status=OK), rules.rules()["memory"]
    parts = []
    for g in ctx.nvml.get("gpus", []):
        total, free = g.get("memory_total_mib"), g.get("memory_free_mib")
        procs = g.get("processes") if isinstance(g.get("processes"), list) else []
        layer.facts[f"gpu{g['index']}"] = {"total_mib": total, "free_mib": free, "processes": procs}
        if not isinstance(total, int) or not isinstance(free, int):
            parts.append(f"GPU {g['index']}: memory n/a")
            continue
        parts.append(f"GPU {g['index']}: {free} of {total} MiB free")
        held = sum(p["used_mib"] or 0 for p in procs)
        who = _process_names(ctx, procs) if procs else "no process listed (another container or VM?)"
        if free < max(limits["min_free_mib"], limits["min_free_fraction"] * total):
            layer.summary = "; ".join(parts)
            return layer.broken(
                f"GPU {g['index']} has only {free} of {total} MiB free: held by {who}. The framework then "
                "fails with 'cuDNN failed to initialize' or out-of-memory errors",
                "stop those processes (nvidia-smi shows them), or wait for them to finish",
            )
        if held > limits["warn_held_by_others_fraction"] * total:
            layer.warn(f"GPU {g['index']}: other processes hold {held} MiB: {who}", "nvidia-smi")
    layer.summary = "; ".join(parts)
    return layer


def health_problems(gpu: dict[str, Any]) -> list[tuple[str, str]]:
    """Faults that make a GPU untrustworthy (DCGM treats these as failures): (problem, remedy)."""
    problems = []
    if isinstance(gpu.get("ecc_uncorrected_volatile"), int) and gpu["ecc_uncorrected_volatile"] > 0:
        # Source: NVIDIA/k8s-device-plugin#243 (a GPU with uncorrectable ECC errors fails allocations).
        problems.append(
            (
                f"{gpu['ecc_uncorrected_volatile']} uncorrected ECC errors since boot",
                "reset the GPU or reboot; if they come back, the GPU needs service",
            )
        )
    rows = gpu.get("remapped_rows")
    if isinstance(rows, dict):
        if rows.get("failure"):
            problems.append(
                ("row remapping failed: the GPU memory cannot repair itself", "the GPU needs service (RMA)")
            )
        if rows.get("pending"):
            # Source: leptonai/gpud#80 (pending remaps take effect only after a GPU reset).
            problems.append(("row remapping pending", "reset the GPU (sudo nvidia-smi -r -i N) or reboot"))
    pages = gpu.get("retired_pages", {})
    if isinstance(pages.get("double_bit"), int) and pages["double_bit"] > 0:
        problems.append(
            (f"{pages['double_bit']} pages retired for double-bit ECC errors", "reboot; if it grows, service")
        )
    events = gpu.get("clock_events")
    if isinstance(events, list):
        bad = [e for e in events if e in rules.rules()["health"]["broken_clock_events"]]
        if bad:
            problems.append(
                (
                    f"clocks held down by {', '.join(bad)}: cooling or power trouble",
                    "nvidia-smi -q -d PERFORMANCE,TEMPERATURE,POWER; check fans, airflow and the power "
                    "cables",
                )
            )
    for key, value in gpu.items():
        if isinstance(value, str) and value.startswith("error:"):
            problems.append((f"{key}: {value}", "sudo dmesg | grep -i xid; reboot"))
    return problems


def health_warnings(gpu: dict[str, Any]) -> list[tuple[str, str]]:
    """Conditions worth a look that do not fail the GPU: (warning, remedy)."""
    warnings = []
    pcie = gpu.get("pcie", {})
    cur, top, own = pcie.get("width_current"), pcie.get("width_max"), pcie.get("width_gpu_max")
    if isinstance(cur, int) and isinstance(top, int) and cur < top:
        # Source: janhq/jan#183 (a riser that downgraded the link).
        warnings.append(
            (f"PCIe link width x{cur} of x{top}", "reseat the GPU, use a full-width slot, no riser")
        )
    elif isinstance(cur, int) and isinstance(own, int) and cur < own:
        # NVML's maximum already includes the slot's limit; the GPU's own (sysfs max_link_width, its link
        # capability) does not. Sources: nokyan/resources#512, noonghunna/club-3090#1098 (x8: 40% slower).
        warnings.append(
            (
                f"PCIe link x{cur}: the GPU is built for x{own}, the slot gives x{cur} (an x8 slot, a riser, "
                "or lanes shared with another card or an M.2 drive)",
                "move the GPU to a full x16 slot (the board's manual says which slots share lanes)",
            )
        )
    gen_max, gen_gpu = pcie.get("gen_max"), pcie.get("gen_gpu_max")
    if isinstance(gen_max, int) and isinstance(gen_gpu, int) and gen_max < gen_gpu:
        warnings.append(
            (
                f"the slot runs PCIe Gen{gen_max}, the GPU supports Gen{gen_gpu}",
                "use a slot of the GPU's generation (or check the firmware's PCIe setting)",
            )
        )
    events = gpu.get("clock_events")
    if isinstance(events, list):
        soft = [e for e in events if e in rules.rules()["health"]["warn_clock_events"]]
        if soft:
            warnings.append((f"clocks reduced by {', '.join(soft)}", "check the GPU's cooling"))
    if gpu.get("ecc_mode", {}).get("current") != gpu.get("ecc_mode", {}).get("pending"):
        warnings.append(("ECC mode change pending a reboot", "reboot"))
    if gpu.get("mig_mode", {}).get("current") == 1:
        warnings.append(
            ("MIG is enabled: frameworks see MIG slices, speed figures are per slice", "none needed")
        )
    return warnings


def _own_link_widths(ctx: Context) -> None:
    """The GPU's own maximum link width (sysfs max_link_width, its PCIe capability) beside NVML's figures."""
    sysfs = {devices.normalize_bus_id(g["address"]): g.get("link", {}) for g in ctx.pci_gpus}
    for g in ctx.nvml.get("gpus", []):
        width = (sysfs.get(g.get("pci_bus_id")) or {}).get("max_link_width")
        if isinstance(g.get("pcie"), dict) and width and str(width).isdigit():
            g["pcie"]["width_gpu_max"] = int(width)


def xid_problems(ctx: Context, layer: Layer, gpu: dict[str, Any]) -> list[tuple[str, str]]:
    """The kernel log's Xid errors of ``gpu`` that mean it needs a reset or service (NVML still answers)."""
    events = kernel_log.for_gpu(layer.facts.get("xid_events", []), gpu.get("pci_bus_id"))
    bad = [e for e in events if e["severity"] == "broken" and kernel_log.recent(e)]
    old = [e for e in events if e["severity"] == "broken" and not kernel_log.recent(e)]
    if old:
        hours = min(e["age_s"] for e in old) / 3600
        layer.warn(
            f"GPU {gpu['index']}: the kernel log has {kernel_log.summary(old)}, the last {hours:.1f} h "
            "ago; if the GPU was reset since, it is history",
            old[-1].get("remedy", "reboot").format(index=gpu["index"]),
        )
    if not bad:
        if events and not old:
            layer.notes.append(f"GPU {gpu['index']}: the kernel log has {kernel_log.summary(events)}")
        return []
    last = bad[-1]
    return [
        (
            f"the kernel log has {kernel_log.summary(bad)} although NVML still answers; the last: "
            f"'Xid {last['code']}, {last['text']}'",
            last.get("remedy", "reboot").format(index=gpu["index"]),
        )
    ]


def health_layer(ctx: Context) -> Layer:
    """The GPUs' own health from NVML's picture and the kernel log. It runs right after NVML and does not stop
    the layers above: a fault here (ECC, Xid) is usually why they fail, so it is read whatever they say, and
    as the first broken layer it is the verdict (the first cause wins)."""
    layer = Layer("health", status=OK)
    gpus = ctx.nvml.get("gpus", [])
    _own_link_widths(ctx)
    xids = kernel_log.read_xids(ctx.boundary)
    layer.facts["xid_events"] = xids or []
    if xids is None:
        layer.notes.append("the kernel log is not readable here (dmesg_restrict): Xid errors not checked; "
                           "sudo dmesg | grep -i xid")  # fmt: skip
    for g in gpus:
        problems = health_problems(g) + xid_problems(ctx, layer, g)
        if problems:
            problem, remedy = problems[0]
            return layer.broken(
                f"{devices.describe(g)} ({g['name']}): {problem}",
                remedy,
                summary="; ".join(p for p, _ in problems),
            )
    for g in gpus:
        for warning, remedy in health_warnings(g):
            layer.warn(f"GPU {g['index']}: {warning}", remedy)
        pcie = g.get("pcie", {})
        if (
            isinstance(pcie.get("gen_current"), int)
            and isinstance(pcie.get("gen_max"), int)
            and pcie["gen_current"] < pcie["gen_max"]
        ):
            # An idle GPU lowers its link generation to save power (Syllo/nvtop#6): a remark, not a fault.
            layer.notes.append(
                f"GPU {g['index']}: PCIe Gen{pcie['gen_current']} now (max Gen{pcie['gen_max']}; idle GPUs "
                "step down)"
            )
        if g.get("persistence_mode") == 0 and not ctx.wsl:
            layer.notes.append(
                f"GPU {g['index']}: persistence mode off (sudo systemctl enable --now nvidia-persistenced "
                "keeps the driver warm)"
            )
    layer.facts.update(
        {
            f"gpu{g['index']}": {
                k: g.get(k)
                for k in (
                    "ecc_uncorrected_volatile",
                    "remapped_rows",
                    "retired_pages",
                    "clock_events",
                    "pcie",
                    "temperature_c",
                    "persistence_mode",
                )
            }
            for g in gpus
        }
    )
    if not layer.summary:
        layer.summary = f"{len(gpus)} GPU(s): ECC, remapped rows, clocks and PCIe link checked" + (
            "" if layer.status == OK else f" ({len(layer.notes)} remark(s))"
        )
    return layer
