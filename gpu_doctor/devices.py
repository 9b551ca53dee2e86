"""Which physical GPU is which: NVML's indices, CUDA's ordinals, PCI bus ids and UUIDs in one place.

NVML numbers GPUs in PCI bus order; CUDA numbers them fastest first unless ``CUDA_DEVICE_ORDER=PCI_BUS_ID``,
and then only those ``CUDA_VISIBLE_DEVICES`` lets through, renumbered from 0. So an NVML index is never a CUDA
ordinal: the two are matched by PCI bus id (NVML's ``nvmlDeviceGetPciInfo``, CUDA's ``cuDeviceGetPCIBusId``).
Everything that says "GPU N" to a user says which physical GPU that is (``describe``). Standard library only.

``CUDA_VISIBLE_DEVICES`` (CUDA Programming Guide, "CUDA Environment Variables"): unset, every GPU; empty,
none; else a comma-separated list of integer indices (into CUDA's own order), GPU UUIDs (``GPU-8932f937-...``,
or a prefix that names one GPU alone), or MIG devices (``MIG-<uuid>`` or ``MIG-GPU-<uuid>/<gi>/<ci>``); the
list stops at the first entry that names no device ("0,2,-1,1" gives 0 and 2).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

_BUS_ID = re.compile(r"^(?:([0-9a-fA-F]+):)?([0-9a-fA-F]{1,2}):([0-9a-fA-F]{1,2})(?:\.([0-7]))?$")


def normalize_bus_id(text: Any) -> str | None:
    """Any spelling of a PCI address -> sysfs form "0000:01:00.0" (NVML gives "00000000:01:00.0", CUDA
    "0000:01:00.0", the kernel log "0000:01:00" without the function)."""
    if isinstance(text, bytes):
        text = text.decode(errors="replace")
    if not isinstance(text, str):
        return None
    m = _BUS_ID.match(text.strip().rstrip("\0"))
    if not m:
        return None
    domain, bus, device, function = m.groups()
    return f"{int(domain or '0', 16):04x}:{int(bus, 16):02x}:{int(device, 16):02x}.{function or '0'}"


def describe(gpu: Mapping[str, Any] | None) -> str:
    """ "GPU 1 (0000:41:00.0, GPU-8932f937...)": NVML's index, the bus id and the UUID of a physical GPU."""
    if not gpu:
        return "an unidentified GPU"
    parts = [p for p in (gpu.get("pci_bus_id"), gpu.get("uuid")) if isinstance(p, str) and p and p != "n/a"]
    return f"GPU {gpu.get('index', '?')}" + (f" ({', '.join(parts)})" if parts else "")


# --- CUDA_VISIBLE_DEVICES -----------------------------------------------------------------------------------
@dataclass
class Visibility:
    """What ``CUDA_VISIBLE_DEVICES`` leaves CUDA: the NVML GPUs it shows, in CUDA's order (the ordinal is the
    position)."""

    value: str | None  # the variable's value (None: unset)
    gpus: list[dict[str, Any]] = field(default_factory=list)
    stopped_at: str | None = None  # the entry that named no GPU (CUDA ignores it and everything after it)
    order_known: bool = True  # False: indices under FASTEST_FIRST on unlike GPUs (CUDA's guess decides)
    mig: bool = False  # a MIG device was named: CUDA then shows that one MIG slice

    @property
    def hides_all(self) -> bool:
        return not self.gpus

    def explain(self) -> str:
        """Why this value shows what it shows, in one sentence part."""
        shown = ", ".join(describe(g) for g in self.gpus) or "no GPU"
        tail = (
            f"; {self.stopped_at!r} names no GPU, so it and what follows are ignored"
            if self.stopped_at
            else ""
        )
        return f"CUDA_VISIBLE_DEVICES={self.value!r} shows {shown}{tail}"


def cuda_order(gpus: list[dict[str, Any]], env: Mapping[str, str]) -> tuple[list[dict[str, Any]], bool]:
    """NVML's GPUs in CUDA's enumeration order, before CUDA_VISIBLE_DEVICES; and whether that order is known.

    PCI_BUS_ID is NVML's order. FASTEST_FIRST (the default) puts "the fastest" first by a heuristic and
    leaves the rest unspecified; for GPUs of one model it is the bus order, for unlike ones only CUDA
    itself knows."""
    by_bus = sorted(gpus, key=lambda g: (g.get("pci_bus_id") or "", g.get("index", 0)))
    if env.get("CUDA_DEVICE_ORDER", "FASTEST_FIRST").strip().upper() == "PCI_BUS_ID":
        return by_bus, True
    return by_bus, len({(g.get("name"), g.get("compute_capability")) for g in gpus}) <= 1


def _match_uuid(entry: str, gpus: list[dict[str, Any]]) -> dict[str, Any] | None:
    wanted = entry.lower()
    hits = [g for g in gpus if isinstance(g.get("uuid"), str) and g["uuid"].lower().startswith(wanted)]
    return hits[0] if len(hits) == 1 else None  # a prefix must name one GPU alone


def _match_mig(entry: str, gpus: list[dict[str, Any]]) -> dict[str, Any] | None:
    """MIG-GPU-<uuid>/<gi>/<ci> names its parent GPU; MIG-<uuid> a slice: its parent, if NVML listed it."""
    rest = entry[4:]
    if rest.upper().startswith("GPU-"):
        return _match_uuid(rest.split("/", 1)[0], gpus)
    for g in gpus:
        if any(str(u).lower() == entry.lower() for u in g.get("mig_uuids", []) or []):
            return g
    return None


def visible(gpus: list[dict[str, Any]], env: Mapping[str, str]) -> Visibility:
    """The physical GPUs CUDA will enumerate, in order, given NVML's picture and the environment."""
    value = env.get("CUDA_VISIBLE_DEVICES")
    ordered, known = cuda_order(gpus, env)
    if value is None:
        return Visibility(None, ordered, order_known=known)
    result = Visibility(value, [], order_known=True)
    for raw in value.split(",") if value.strip() else []:  # empty: no GPU at all
        entry = raw.strip()
        gpu = None
        if re.fullmatch(r"\d+", entry):
            gpu = ordered[int(entry)] if int(entry) < len(ordered) else None
            result.order_known = result.order_known and known
        elif entry.upper().startswith("GPU-"):
            gpu = _match_uuid(entry, gpus)
        elif entry.upper().startswith("MIG-"):
            gpu, result.mig = _match_mig(entry, gpus), True
        if gpu is None or gpu in result.gpus:
            result.stopped_at = entry
            break
        result.gpus.append(gpu)
    return result


# --- CUDA's devices against NVML's --------------------------------------------------------------------------
def match_cuda_devices(cuda_devices: list[dict[str, Any]], nvml_gpus: list[dict[str, Any]]) -> None:
    """Give each CUDA device (ordinal, pci_bus_id, uuid) the NVML GPU it is: ``nvml_index``; by bus id,
    else by UUID (a MIG slice has its own UUID and its parent's bus id)."""
    by_bus = {g.get("pci_bus_id"): g for g in nvml_gpus if g.get("pci_bus_id")}
    by_uuid = {str(g.get("uuid")).lower(): g for g in nvml_gpus if isinstance(g.get("uuid"), str)}
    for dev in cuda_devices:
        gpu = by_bus.get(dev.get("pci_bus_id")) or by_uuid.get(str(dev.get("uuid")).lower())
        dev["nvml_index"] = gpu.get("index") if gpu else None


def physical(
    cuda_devices: list[dict[str, Any]], nvml_gpus: list[dict[str, Any]], ordinal: int
) -> dict[str, Any]:
    """The physical GPU behind CUDA ordinal ``ordinal`` (what a framework calls GPU ``ordinal``): its NVML
    index, bus id, UUID and name; {} when unknown."""
    dev = next((d for d in cuda_devices if d.get("ordinal", d.get("index")) == ordinal), None)
    if dev is None:
        return {}
    gpu = next((g for g in nvml_gpus if g.get("index") == dev.get("nvml_index")), None) or {}
    return {
        "cuda_ordinal": ordinal,
        "index": gpu.get("index", dev.get("nvml_index")),
        "pci_bus_id": dev.get("pci_bus_id") or gpu.get("pci_bus_id"),
        "uuid": gpu.get("uuid") or dev.get("uuid"),
        "name": gpu.get("name") or dev.get("name"),
    }
