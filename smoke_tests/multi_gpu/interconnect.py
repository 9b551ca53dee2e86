"""The interconnect's expected values and its faults, from NVML's topology (gpu_doctor/topology.py).

Expected bandwidth is derived per topology from the link types and counts, with NCCL's own model of each
link (smoke_tests/expected_gpus.toml [interconnect], each figure with its source): a pair joined by k NVLinks
copies at k x one link's bandwidth; a pair on PCIe with P2P at the slower of the two links; an all-reduce's
bus bandwidth reaches the slowest GPU's links (nccl-tests' convention: busbw = algbw x 2(n-1)/n). A pair or a
GPU is judged on its own, so one degraded link is named, never averaged away.
"""

from __future__ import annotations

import itertools
from collections.abc import Mapping
from typing import Any

from gpu_doctor.topology import label as pair_label
from smoke_tests.multi_gpu import siblings
from smoke_tests.speed import expected_for, expected_table


def busbw(algbw: float, n: int) -> float:
    """nccl-tests' bus bandwidth of an all-reduce over n ranks (doc/PERFORMANCE.md): algbw x 2(n-1)/n."""
    return algbw * 2 * (n - 1) / n


def _table(table: Mapping[str, Any] | None) -> Mapping[str, Any]:
    return (table if table is not None else expected_table())["interconnect"]


def nvlink_gbs(compute_capability: Any, table: Mapping[str, Any] | None = None) -> float | None:
    """One NVLink link's bandwidth (GB/s, one direction) in NCCL's model, for the architecture at or below
    `compute_capability` ("9.0")."""
    try:
        cc = tuple(int(x) for x in str(compute_capability).split("."))
    except ValueError:
        return None
    rows = sorted(
        (tuple(int(x) for x in k.split(".")), v) for k, v in _table(table)["nvlink_gbs_per_link"].items()
    )
    below = [v for k, v in rows if k <= cc]
    return below[-1] if below else None


def pcie_gbs(gen: Any, width: Any, table: Mapping[str, Any] | None = None) -> float | None:
    """NCCL's model of a PCIe link (GB/s): width x the generation's per-lane rate / 80."""
    lanes = _table(table)["pcie_lane_100mbps"]
    if isinstance(gen, int) and isinstance(width, int) and str(gen) in lanes:
        return width * lanes[str(gen)] / 80.0
    return None


def _link_gbs(gpu: Mapping[str, Any], table: Mapping[str, Any] | None) -> float | None:
    pcie = gpu.get("pcie", {})
    return pcie_gbs(pcie.get("gen_max"), pcie.get("width_max"), table)


def expected_pair(
    pair: Mapping[str, Any], gpus: Mapping[int, Mapping[str, Any]], table: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """What a copy from one GPU of `pair` to the other should reach: {"gbs": float | None, "basis": words}."""
    a, b = (gpus[i] for i in pair["gpus"])
    if pair.get("nvlinks"):
        per_link = nvlink_gbs(a.get("compute_capability"), table)
        if per_link is None:
            return {"gbs": None, "basis": f"{pair_label(pair)}: no NVLink figure for compute capability "
                                          f"{a.get('compute_capability')}"}  # fmt: skip
        via = " through NVSwitch" if pair.get("via") == "nvswitch" else ""
        return {"gbs": round(pair["nvlinks"] * per_link, 1),
                "basis": f"{pair['nvlinks']} NVLinks{via} x {per_link} GB/s (NCCL's model)"}  # fmt: skip
    if pair.get("p2p_read") != "OK":
        return {"gbs": None, "basis": f"no P2P ({pair.get('p2p_read')}): copies go through host memory, "
                                      "reported only"}  # fmt: skip
    links = [_link_gbs(g, table) for g in (a, b)]
    if None in links:
        return {"gbs": None, "basis": "PCIe link generation or width n/a"}
    return {"gbs": round(min(links), 1), "basis": f"PCIe {pair.get('path')}: the slower link, "
                                                  f"{min(links):g} GB/s (NCCL's model)"}  # fmt: skip


def expected_busbw(
    topology: Mapping[str, Any], gpus: Mapping[int, Mapping[str, Any]], table: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """An all-reduce's expected bus bandwidth over all GPUs: every pair joined by NVLink (directly or through
    NVSwitch): the slowest GPU's NVLinks; else PCIe with P2P on paths within one CPU: the slowest link."""
    pairs = topology.get("pairs", [])
    if not pairs:
        return {"gbs": None, "basis": "no topology"}
    if all(p.get("nvlinks") for p in pairs):
        summary = {g["index"]: g["nvlink"] for g in topology.get("gpus", [])}
        per = {
            i: summary[i]["up"] * (nvlink_gbs(gpus[i].get("compute_capability"), table) or 0) for i in summary
        }
        slowest = min(per, key=lambda i: per[i])
        return {"gbs": round(per[slowest], 1), "basis": f"every pair on NVLink: the slowest GPU's "
                f"{summary[slowest]['up']} links x "
                f"{nvlink_gbs(gpus[slowest].get('compute_capability'), table)} "
                "GB/s (NCCL's model)"}  # fmt: skip
    if any(p.get("p2p_read") != "OK" for p in pairs):
        return {
            "gbs": None,
            "basis": "some pairs have no P2P: the ring goes through host memory, reported only",
        }
    if any(p.get("path") == "SYS" for p in pairs):
        return {"gbs": None, "basis": "the ring crosses CPU sockets (SYS), whose link NVML does not "
                                      "describe: reported only"}  # fmt: skip
    links = [_link_gbs(gpus[i], table) for i in gpus]
    if None in links:
        return {"gbs": None, "basis": "PCIe link generation or width n/a"}
    return {"gbs": round(min(links), 1), "basis": f"PCIe with P2P: the slowest link, {min(links):g} GB/s "
                                                  "(NCCL's model)"}  # fmt: skip


def reference(gpus: Mapping[int, Mapping[str, Any]], table: Mapping[str, Any] | None = None) -> dict | None:
    """The public per-SKU all-reduce floor for this many GPUs of this model, if there is one (informative)."""
    models = {(expected_for(str(g.get("name")), table) or {}).get("model") for g in gpus.values()}
    if len(models) != 1:
        return None
    model = models.pop()
    for ref in _table(table).get("reference", []):
        if ref["model"] == model and ref["gpus"] == len(gpus):
            return dict(ref)
    return None


def pair_groups(named: list[Any], system: Mapping[str, Any]) -> dict[tuple[int, int], str]:
    """Sibling pairs of the measured devices (`named`: devices.Device), by (source, target) index: the same
    GPU models and the same expected bandwidth and basis (NVLink count, PCIe path); simulated ones alike."""
    gpus = {g["index"]: g for g in system.get("gpus", []) if not g.get("error")}
    topo = {tuple(p["gpus"]): p for p in (system.get("topology") or {}).get("pairs", [])}
    groups = {}
    for a, b in itertools.permutations(named, 2):
        key = tuple(sorted((a.nvml.get("index", -1), b.nvml.get("index", -1))))
        pair = topo.get(key)
        if pair is None or not gpus:
            groups[(a.index, b.index)] = f"{a.group} -> {b.group}"
        else:
            expected = expected_pair(pair, gpus)
            groups[(a.index, b.index)] = f"{a.group} -> {b.group}: {expected['gbs']} ({expected['basis']})"
    return groups


# --- Faults of the topology itself (NVML's facts, no measurement) ------------------------------------------
def _name(gpu: Mapping[str, Any]) -> str:
    return f"GPU {gpu['index']} (bus {gpu.get('pci_bus_id')}, serial {gpu.get('serial')})"


def link_faults(system: Mapping[str, Any]) -> list[tuple[tuple[int, ...], str]]:
    """What the topology says is broken, each as (the GPUs it names, one line naming them): a PCIe link
    trained below its own maximum (a riser, a loose card), a GPU with fewer NVLinks up than its identical
    siblings, a pair with fewer direct NVLinks than the other pairs of identical GPUs, and NVLink pairs
    without P2P."""
    gpus = {g["index"]: g for g in system.get("gpus", []) if not g.get("error")}
    topology = system.get("topology") or {}
    faults: list[tuple[tuple[int, ...], str]] = []
    for i, g in gpus.items():
        pcie = g.get("pcie", {})
        cur, top = pcie.get("width_current"), pcie.get("width_max")
        if isinstance(cur, int) and isinstance(top, int) and cur < top:
            faults.append(((i,), f"{_name(g)}: PCIe link x{cur} of x{top}: reseat the card, use a full-width "
                                 "slot, no riser"))  # fmt: skip
    groups = {i: str(g.get("name")) for i, g in gpus.items()}
    up = {e["index"]: e["nvlink"]["up"] for e in topology.get("gpus", []) if e["index"] in gpus}
    for i, found in siblings.behind(up, groups, tolerance=0.0).items():
        links = next(e["nvlink"]["down"] for e in topology["gpus"] if e["index"] == i)
        down = f" (links down: {', '.join(map(str, links))})" if links else ""
        faults.append(((i,), f"{_name(gpus[i])}: {found['value']} NVLinks up, its identical siblings "
                             f"{found['siblings_median']:g}{down}"))  # fmt: skip
    direct = {tuple(p["gpus"]): p["nvlinks"] for p in topology.get("pairs", []) if p.get("via") == "direct"}
    pair_groups = {key: "/".join(sorted({groups[key[0]], groups[key[1]]})) for key in direct}
    for (i, j), found in siblings.behind(direct, pair_groups, tolerance=0.0).items():
        buses = f"{gpus[i].get('pci_bus_id')} <-> {gpus[j].get('pci_bus_id')}"
        faults.append(((i, j), f"GPU {i} <-> GPU {j} ({buses}): {found['value']} NVLinks, the other pairs "
                               f"{found['siblings_median']:g}"))  # fmt: skip
    for p in topology.get("pairs", []):
        if p.get("nvlinks") and p.get("p2p_read") not in ("OK", "n/a"):
            i, j = p["gpus"]
            faults.append(((i, j), f"GPU {i} <-> GPU {j}: joined by NVLink but P2P is {p.get('p2p_read')!r}"))
    return faults


def link_warnings(system: Mapping[str, Any]) -> list[str]:
    """Worth a look, not a fault: a slot slower than the GPU, pairs on PCIe without P2P, NVLink links down on
    every GPU alike (unbridged ports, or a whole bridge out)."""
    notes = []
    for g in system.get("gpus", []):
        pcie = g.get("pcie", {})
        slot, card = pcie.get("gen_max"), pcie.get("gen_gpu_max")
        if isinstance(slot, int) and isinstance(card, int) and slot < card:
            notes.append(f"{_name(g)}: the slot runs PCIe Gen{slot}, the GPU supports Gen{card}")
    pairs = (system.get("topology") or {}).get("pairs", [])
    no_p2p = [p for p in pairs if p.get("p2p_read") not in ("OK", "n/a") and not p.get("nvlinks")]
    if no_p2p:
        shown = ", ".join(f"{p['gpus'][0]}-{p['gpus'][1]} ({p['p2p_read']})" for p in no_p2p[:6])
        notes.append(
            f"no P2P between GPUs {shown}: copies and collectives between them go through host memory"
        )
    return notes
