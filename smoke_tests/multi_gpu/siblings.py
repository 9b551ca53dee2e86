"""The sibling rule: a device (or a pair of devices) more than `tolerance` behind the median of its identical
siblings is named, even when it clears its absolute floor. DCGM's diagnostics judge each GPU against a fixed
floor only, and users report slow GPUs that pass them (NVIDIA/DCGM#122); eight identical GPUs in one machine
are each other's best reference.

Each figure is a member's best of its repeats (Python's timeit makes the same choice: a slower repeat is other
work interfering, a faster one is not possible), and a flagged member is measured again with its siblings
(`confirmed`): on a shared or loaded machine one noisy round must not name a healthy device, and a device that
is really slower is slower every time.
"""

from __future__ import annotations

import statistics
from collections.abc import Hashable, Mapping
from typing import Any

TOLERANCE = 0.10  # the rule: more than 10% behind the median of its identical siblings
# Simulated devices share one CPU and its memory: there a copy (host-to-device, device-to-host, between
# devices) is mostly allocating and faulting in host memory, and on this project's shared 2-core machine the
# best of 30 copies of one "device" ranged from 12.7 to 24.3 GB/s across four identical ones. Compute and a
# streaming update of a buffer that stays allocated hold steady there, so only these are compared on simulated
# devices; on GPUs every figure is.
STEADY_ON_A_SHARED_CPU = ("fp32_tflops", "mem_gbs")


def compared(figure: str, simulated: bool) -> bool:
    """Whether the sibling rule judges `figure` (on simulated devices: the steady ones only)."""
    return not simulated or figure in STEADY_ON_A_SHARED_CPU


def behind(
    values: Mapping[Hashable, float],
    groups: Mapping[Hashable, str],
    tolerance: float = TOLERANCE,
) -> dict[Hashable, dict[str, Any]]:
    """Members more than `tolerance` below the median of the other members of their group (higher is
    better); a group of one has no siblings and is not judged. {member: {value, siblings_median, behind,
    siblings}}."""
    members: dict[str, list[Hashable]] = {}
    for key in values:
        members.setdefault(groups.get(key, ""), []).append(key)
    out: dict[Hashable, dict[str, Any]] = {}
    for keys in members.values():
        if len(keys) < 2:
            continue
        for key in keys:
            others = [values[k] for k in keys if k != key]
            median = statistics.median(others)
            if median > 0 and values[key] < (1 - tolerance) * median:
                out[key] = {
                    "value": values[key],
                    "siblings_median": median,
                    "behind": round(1 - values[key] / median, 4),
                    "siblings": len(others),
                }
    return out


def confirmed(
    rounds: list[Mapping[Hashable, float]],
    groups: Mapping[Hashable, str],
    tolerance: float = TOLERANCE,
) -> dict[Hashable, dict[str, Any]]:
    """The members behind their siblings in every round measured (the last round's figures)."""
    flagged: dict[Hashable, dict[str, Any]] | None = None
    for values in rounds:
        found = behind(values, groups, tolerance)
        flagged = found if flagged is None else {k: {**found[k], "rounds": flagged[k].get("rounds", 1) + 1}
                                                 for k in flagged if k in found}  # fmt: skip
        if not flagged:
            return {}
    return flagged or {}
