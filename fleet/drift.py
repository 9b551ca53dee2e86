"""Version drift: every field of the hosts' environment fingerprints (workloads/harness/fingerprint.py) that
does not hold one value across the fleet, with which hosts hold which value.

Fields are compared as the fingerprint writes them, flattened (`build.cuda_version`, `installed.rich`), so a
field a later fingerprint adds is covered without a change here. Lists (one entry per GPU) are compared as the
set of their entries' values (`gpus[].driver`), so a 2-GPU host and an 8-GPU host of one driver agree.
Left out: what identifies one machine or one device rather than a version (IDENTITY), and `installed.X`
where the headline `packages.X` already says it.
"""

from __future__ import annotations

import json
import re
from typing import Any

from smoke_tests.baseline import flatten

IDENTITY = re.compile(r"(^|\.)(uuid|serial|pci_bus_id|bus_id|index)$|^cpu\.(cores|memory_gib)$")
ABSENT = "(absent)"
# The parts an administrator asks about first after an update, in this order; the rest follow by name.
PART_ORDER = ("gpus", "build", "os", "kernel", "python", "packages", "installed", "lock_sha256")


def _text(value: Any) -> str:
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True)


def comparable(fingerprint: dict[str, Any]) -> dict[str, str]:
    """field -> value as text, lists collapsed to the sorted set of their entries' values."""
    collapsed: dict[str, set[str]] = {}
    for key, value in flatten(fingerprint).items():
        field = re.sub(r"\[\d+\]", "[]", key)
        if IDENTITY.search(field):
            continue
        collapsed.setdefault(field, set()).add(_text(value))
    fields = {field: ", ".join(sorted(values)) for field, values in collapsed.items()}
    return {
        field: value
        for field, value in fields.items()
        if not (field.startswith("installed.") and f"packages.{field.split('.', 1)[1]}" in fields)
    }


def _order(field: str) -> tuple[int, str]:
    part = re.split(r"[.\[]", field, maxsplit=1)[0]
    return (PART_ORDER.index(part) if part in PART_ORDER else len(PART_ORDER), field)


def find_drift(fingerprints: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    """[{field, part, values: {value: [hosts]}, odd: [hosts]}] for each field with more than one value among
    the hosts that sent a fingerprint; `values` lists the most common value first, `odd` the hosts that do not
    hold it (all of them when no value is the most common)."""
    flat = {host: comparable(fp) for host, fp in fingerprints.items() if fp}
    fields = sorted({field for values in flat.values() for field in values}, key=_order)
    drift = []
    for field in fields:
        holders: dict[str, list[str]] = {}
        for host in sorted(flat):
            holders.setdefault(flat[host].get(field, ABSENT), []).append(host)
        if len(holders) < 2:
            continue
        ranked = sorted(holders.items(), key=lambda item: (-len(item[1]), item[0]))
        top = len(ranked[0][1])
        tie = sum(1 for _, hosts in ranked if len(hosts) == top) > 1
        odd = sorted(h for value, hosts in ranked[(0 if tie else 1) :] for h in hosts)
        drift.append(
            {
                "field": field,
                "part": re.split(r"[.\[]", field, maxsplit=1)[0],
                "values": dict(ranked),
                "odd": odd,
            }
        )
    return drift
