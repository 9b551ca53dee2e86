"""The kernel log's Xid errors: what the NVIDIA driver reports about a GPU since boot, which NVML does not
keep.

A line reads ``NVRM: Xid (PCI:0000:01:00): 79, pid=..., GPU has fallen off the bus.`` (the bus id without its
function). What each code means and how bad it is lives in rules.toml [xid.codes].
"""

from __future__ import annotations

import re
from typing import Any

from gpu_doctor import devices, rules
from gpu_doctor.system import Boundary

_XID = re.compile(r"(?:\[\s*(\d+\.\d+)\].*)?NVRM: Xid \(PCI:([0-9a-fA-F:.]+)\): (\d+),?\s*(.*)")


def xid_events(lines: list[str], uptime_s: float | None = None) -> list[dict[str, Any]]:
    """Every Xid line: {"pci_bus_id", "code", "text", "age_s"} plus its severity and meaning from the rules;
    ``age_s`` (how long ago, from the line's "[seconds since boot]" and the uptime) is None when unknown."""
    found = []
    for line in lines:
        m = _XID.search(line)
        if m:
            code, at = int(m.group(3)), m.group(1)
            age = round(uptime_s - float(at)) if at and uptime_s is not None else None
            found.append(
                {
                    "pci_bus_id": devices.normalize_bus_id(m.group(2)),
                    "code": code,
                    "text": m.group(4).strip()[:200],
                    "age_s": age,
                    **rules.xid(code),
                }
            )
    return found


def recent(event: dict[str, Any]) -> bool:
    """Recent enough to judge the GPU by (rules.toml [xid] recent_s); an unknown age counts as recent. An
    older one may predate a GPU reset that cleared it: a warning, not a fault."""
    return event["age_s"] is None or event["age_s"] <= float(rules.rules()["xid"]["recent_s"])


def read_xids(boundary: Boundary) -> list[dict[str, Any]] | None:
    """The Xid errors in this machine's kernel log; None when the log cannot be read (dmesg_restrict)."""
    lines = boundary.kernel_log(int(rules.rules()["xid"]["read_max_bytes"]))
    uptime = (boundary.read("proc", "uptime") or "").split()
    try:
        up = float(uptime[0]) if uptime else None
    except ValueError:
        up = None
    return None if lines is None else xid_events(lines, up)


def for_gpu(events: list[dict[str, Any]], pci_bus_id: str | None) -> list[dict[str, Any]]:
    """The Xid errors of one GPU (by bus id: the kernel log names the GPU's address, function 0)."""
    return [e for e in events if pci_bus_id and e["pci_bus_id"] == pci_bus_id]


def summary(events: list[dict[str, Any]]) -> str:
    """ "Xid 119 x3 (the GPU's firmware (GSP) did not answer an RPC in time), Xid 13 x1 (...)"."""
    counts: dict[int, int] = {}
    for e in events:
        counts[e["code"]] = counts.get(e["code"], 0) + 1
    meaning = {e["code"]: e["meaning"] for e in events}
    return ", ".join(f"Xid {code} x{n} ({meaning[code]})" for code, n in counts.items())
