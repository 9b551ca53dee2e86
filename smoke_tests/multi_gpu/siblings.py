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
# Simulated devices share one CPU and its memory with every other process on the machine. Their clock is the
# process's CPU time (measure.clock_for), which holds compute steady: the best of three matmul repeats of 8
# simulated devices, under a load average of 13 on this project's 2 shared cores, stayed within 0.97-1.10 of
# their median. Memory-bound work does not: a streaming update ranged 0.86-1.20, and a copy is mostly
# allocating host memory (best of 30 copies: 12.7 to 24.3 GB/s across four identical "devices"). So only the
# matmul is compared on simulated devices; on GPUs every figure is.
STEADY_ON_A_SHARED_CPU = ("fp32_tflops",)


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
