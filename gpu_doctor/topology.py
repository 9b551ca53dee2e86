"""The GPUs' interconnect as NVML describes it: each GPU's NVLink links (state, version, what each one
reaches) and, for every pair of GPUs, the P2P status and the PCIe path between them (nvidia-smi topo -m's
words).

Facts only, every query guarded by nvml.query (a query the GPU or driver does not offer is "n/a"); what they
mean for a machine (a link down, a pair slower than its siblings) is judged in smoke_tests/multi_gpu/.
"""

from __future__ import annotations

from itertools import combinations
from types import ModuleType
from typing import Any

from gpu_doctor.devices import normalize_bus_id
from gpu_doctor.nvml import NA, query

# nvmlDeviceGetNvLinkVersion returns the nvmlNvlinkVersion_t enum, not the version itself (an A100 says 5:
# NVLink 3.1): open-mpi/hwloc#658, and NVML's reference of nvmlNvlinkVersion_t.
NVLINK_VERSIONS = {1: "1.0", 2: "2.0", 3: "2.2", 4: "3.0", 5: "3.1", 6: "4.0", 7: "5.0", 8: "6.0"}
# nvmlDeviceGetNvLinkRemoteDeviceType
REMOTE_TYPES = {0: "gpu", 1: "ibmnpu", 2: "switch"}
# nvmlDeviceGetTopologyCommonAncestor -> nvidia-smi topo -m's legend: one PCIe switch (PIX), several (PXB),
# the CPU's host bridge (PHB), host bridges within a NUMA node (NODE), across NUMA nodes (SYS).
PATHS = {0: "same board", 10: "PIX", 20: "PXB", 30: "PHB", 40: "NODE", 50: "SYS"}
# nvmlDeviceGetP2PStatus (nvmlGpuP2PStatus_t)
P2P_STATUS = {
    0: "OK",
    1: "chipset not supported",
    2: "GPU not supported",
    3: "IOH topology not supported",
    4: "disabled by regkey",
    5: "not supported",
    6: "unknown",
}
MAX_LINKS = 18  # NVML_NVLINK_MAX_LINKS before nvidia-ml-py 13 (36 since); H100/B200 have 18


def _bus(pci: Any) -> str | None:
    return normalize_bus_id(getattr(pci, "busId", None))  # sysfs form, as nvml.gpu_info's pci_bus_id


def nvlinks(nvml: ModuleType, handle: Any) -> list[dict[str, Any]]:
    """Every NVLink link of one GPU: {"link", "up", "version", "remote_type", "remote_bus_id"}. The links end
    at the first index NVML refuses (NotSupported, or InvalidArgument past the GPU's own count:
    NVIDIA/TensorRT-LLM#17060); a GPU without NVLink has none."""
    links = []
    for link in range(max(MAX_LINKS, getattr(nvml, "NVML_NVLINK_MAX_LINKS", MAX_LINKS))):
        state = query(getattr(nvml, "nvmlDeviceGetNvLinkState", None), handle, link)
        if not isinstance(state, int):
            break
        entry: dict[str, Any] = {"link": link, "up": state == 1}
        version = query(getattr(nvml, "nvmlDeviceGetNvLinkVersion", None), handle, link)
        entry["version"] = NVLINK_VERSIONS.get(version, NA) if isinstance(version, int) else version
        remote = query(getattr(nvml, "nvmlDeviceGetNvLinkRemoteDeviceType", None), handle, link)
        entry["remote_type"] = REMOTE_TYPES.get(remote, "unknown") if isinstance(remote, int) else remote
        entry["remote_bus_id"] = _bus(
            query(getattr(nvml, "nvmlDeviceGetNvLinkRemotePciInfo", None), handle, link)
        )
        links.append(entry)
    return links


def _pair(nvml: ModuleType, a: Any, b: Any) -> dict[str, Any]:
    status = query(getattr(nvml, "nvmlDeviceGetP2PStatus", None), a, b, nvml.NVML_P2P_CAPS_INDEX_READ)
    path = query(getattr(nvml, "nvmlDeviceGetTopologyCommonAncestor", None), a, b)
    return {
        "p2p_read": P2P_STATUS.get(status, f"status {status}") if isinstance(status, int) else status,
        "path": PATHS.get(path, f"level {path}") if isinstance(path, int) else path,
    }


def link_summary(links: list[dict[str, Any]], bus_to_index: dict[str, int]) -> dict[str, Any]:
    """One GPU's NVLink in numbers: links up and down, the version, and how many up links reach each other GPU
    (by index) or an NVSwitch."""
    up = [link for link in links if link["up"]]
    to_gpus: dict[int, int] = {}
    to_switch = 0
    for link in up:
        peer = bus_to_index.get(link.get("remote_bus_id") or "")
        if peer is not None and link.get("remote_type") in ("gpu", "unknown", NA):
            to_gpus[peer] = to_gpus.get(peer, 0) + 1
        elif link.get("remote_type") == "switch":
            to_switch += 1
    versions = sorted({str(link["version"]) for link in up})
    return {
        "up": len(up),
        "down": [link["link"] for link in links if not link["up"]],
        "version": versions[0] if len(versions) == 1 else ("/".join(versions) or None),
        "to_gpus": to_gpus,
        "to_switch": to_switch,
    }


def probe(nvml: ModuleType, gpus: list[dict[str, Any]]) -> dict[str, Any]:
    """The interconnect of the GPUs NVML opened (`gpus`: nvml.gpu_info's entries): per GPU its NVLink links
    and their summary, per pair {"gpus": [i, j], "p2p_read", "path", "nvlinks"} (direct links up between them,
    or via NVSwitch: the fewer of the two GPUs' switch links)."""
    opened = [g for g in gpus if not g.get("error")]
    handles = {g["index"]: nvml.nvmlDeviceGetHandleByIndex(g["index"]) for g in opened}
    bus_to_index = {g["pci_bus_id"]: g["index"] for g in opened if normalize_bus_id(g.get("pci_bus_id"))}
    per_gpu = []
    for g in opened:
        links = nvlinks(nvml, handles[g["index"]])
        per_gpu.append({"index": g["index"], "links": links, "nvlink": link_summary(links, bus_to_index)})
    summary = {entry["index"]: entry["nvlink"] for entry in per_gpu}
    pairs = []
    for i, j in combinations(sorted(handles), 2):
        direct = min(summary[i]["to_gpus"].get(j, 0), summary[j]["to_gpus"].get(i, 0))  # up at both ends
        switched = min(summary[i]["to_switch"], summary[j]["to_switch"])
        pairs.append(
            {
                "gpus": [i, j],
                **_pair(nvml, handles[i], handles[j]),
                "nvlinks": direct or switched,
                "via": "direct" if direct else ("nvswitch" if switched else None),
            }
        )
    return {"gpus": per_gpu, "pairs": pairs}


def label(pair: dict[str, Any]) -> str:
    """nvidia-smi topo -m's word for a pair: NV<links> when NVLink joins them, else the PCIe path."""
    return f"NV{pair['nvlinks']}" if pair.get("nvlinks") else str(pair.get("path"))
