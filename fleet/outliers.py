"""Outliers: hosts whose figure is far from the median of their peers (the hosts with the same GPUs).

Every figure of every check is compared, whatever the check (a figure a later check adds is covered), when it
has a direction and its check passed on that host. The rule and its numbers are in fleet/settings.toml.
"""

from __future__ import annotations

import statistics
import tomllib
from functools import cache
from pathlib import Path
from typing import Any

RULES_FILE = Path(__file__).resolve().parent / "settings.toml"
# Iglewicz and Hoaglin's modified z-score: 0.6745 * (x - median) / MAD (0.6745: the MAD of a standard normal).
Z_SCALE = 0.6745


@cache
def rules() -> dict[str, Any]:
    """fleet/settings.toml [outliers]: tolerance, min_hosts, modified_z, z_min_hosts."""
    return tomllib.loads(RULES_FILE.read_text())["outliers"]


def worse_by(value: float, median: float, better: str) -> float:
    """How much worse than the median, as a fraction of it (negative: better)."""
    if median == 0:
        return 0.0
    change = (value - median) / abs(median)
    return -change if better == "higher" else change


def compare_figures(
    hosts: dict[str, dict[str, Any]], rule: dict[str, Any] | None = None
) -> list[dict[str, Any]]:
    """One entry per (group, check, figure) that at least `min_hosts` hosts of a group measured: the values,
    their median and MAD, and the hosts named as outliers."""
    rule = rule or rules()
    groups: dict[str, list[str]] = {}
    for name, host in hosts.items():
        if host.get("group"):
            groups.setdefault(host["group"], []).append(name)
    compared = []
    for group, members in sorted(groups.items()):
        series: dict[tuple[str, str], dict[str, Any]] = {}
        for name in members:
            host = hosts[name]
            for check, figures in host["figures"].items():
                if host["checks"].get(check) != "passed":
                    continue
                for figure, fig in figures.items():
                    if fig.get("better") not in ("higher", "lower"):
                        continue
                    entry = series.setdefault(
                        (check, figure), {"unit": fig.get("unit", ""), "better": fig["better"], "values": {}}
                    )
                    entry["values"][name] = fig["value"]
        for (check, figure), entry in sorted(series.items()):
            values = entry["values"]
            if len(values) < rule["min_hosts"]:
                continue
            median = statistics.median(values.values())
            mad = statistics.median(abs(v - median) for v in values.values())
            named = []
            for name, value in sorted(values.items()):
                worse = worse_by(value, median, entry["better"])
                far = len(values) < rule["z_min_hosts"] or mad == 0
                far = far or Z_SCALE * abs(value - median) / mad > rule["modified_z"]
                if worse > rule["tolerance"] and far:
                    named.append({"host": name, "worse_by": round(worse, 4)})
            compared.append(
                {
                    "group": group,
                    "check": check,
                    "figure": figure,
                    "unit": entry["unit"],
                    "better": entry["better"],
                    "median": median,
                    "mad": mad,
                    "values": values,
                    "outliers": named,
                }
            )
    return compared


def find_outliers(compared: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """fleet.json's `outliers`: {host, check, figure, value, median, unit, worse_by, group, peers}."""
    return [
        {
            "host": o["host"],
            "check": c["check"],
            "figure": c["figure"],
            "value": c["values"][o["host"]],
            "median": c["median"],
            "unit": c["unit"],
            "better": c["better"],
            "worse_by": o["worse_by"],
            "group": c["group"],
            "peers": len(c["values"]),
        }
        for c in compared
        for o in c["outliers"]
    ]
