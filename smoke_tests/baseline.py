"""The baseline comparison of the smoke test: an earlier report.json of this machine, checked before the suite
runs (`load_baseline`, `baseline_problem`), then compared with the new report (`compare`: regressions,
improvements, the fingerprint's differences). Used by the runner (--baseline) and by `make fleet-smoke`."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from gpu_doctor.safe_read import read_bytes
from smoke_tests.report import NOT_PASSED

MAX_BASELINE_BYTES = 256 << 20  # a report.json with every telemetry sample is a few megabytes


class BaselineError(ValueError):
    """A baseline that cannot be compared with: one line for the user (bad input, exit 2)."""


def load_baseline(path: Path) -> dict[str, Any]:
    """The report.json at ``path``, checked to be one that `compare` can read; BaselineError says why not."""
    try:  # bounded: a FIFO or /dev/zero given as the baseline is refused, never waited on
        data = json.loads(read_bytes(path, max_bytes=MAX_BASELINE_BYTES, timeout_s=10))
    except OSError as err:
        raise BaselineError(f"--baseline {path}: cannot read it ({err.strerror})") from None
    except (ValueError, RecursionError) as err:
        raise BaselineError(f"--baseline {path}: not valid JSON ({str(err)[:200]})") from None
    if not isinstance(data, dict) or "checks" not in data:
        raise BaselineError(f"--baseline {path}: not a smoke-test report.json (no 'checks')")
    if problem := baseline_problem(data):
        raise BaselineError(f"--baseline {path}: not a smoke-test report.json ({problem})")
    return data


def baseline_problem(data: dict[str, Any]) -> str | None:
    """The first part of a baseline that `compare` could not read, checked before the suite runs."""
    checks = data["checks"]
    if not isinstance(checks, list):
        return "'checks' is not a list"
    for i, check in enumerate(checks):
        if not isinstance(check, dict):
            return f"checks[{i}] is not an object"
        if not isinstance(check.get("id"), str) or not isinstance(check.get("status"), str):
            return f"checks[{i}] has no text 'id' and 'status'"
        figures = check.get("figures", {})
        if not isinstance(figures, dict):
            return f"checks[{i}].figures is not an object"
        for name, fig in figures.items():
            value = fig.get("value") if isinstance(fig, dict) else None
            if not isinstance(fig, dict) or (
                # bool: older reports carried flags (activation_shapes_ok) as figures: still valid baselines
                value is not None and (type(value) not in (bool, int, float) or not math.isfinite(value))
            ):
                return f"checks[{i}].figures.{name[:40]} has no numeric 'value'"
    return None


def flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    """Nested objects and lists as one level: {"gpus[0].driver": ..., "packages.keras": ...}."""
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Fingerprint fields that differ, grouped by part (packages, gpus, build, ...)."""
    a, b = flatten(old or {}), flatten(new or {})
    parts: dict[str, list[dict[str, Any]]] = {}
    for key in sorted(set(a) | set(b)):
        if a.get(key) != b.get(key):
            part = key.split(".", 1)[0].split("[", 1)[0]
            parts.setdefault(part, []).append({"field": key, "baseline": a.get(key), "now": b.get(key)})
    return parts


def compare(baseline: dict[str, Any], report: dict[str, Any], tolerance: float) -> dict[str, Any]:
    """Regressions against an earlier report: checks that passed and now do not, and figures worse than
    ``tolerance`` (a fraction) in their "better" direction; plus which parts of the fingerprint changed."""
    old = {c["id"]: c for c in baseline.get("checks", [])}
    regressions, improvements, compared = [], [], 0
    for check in report["checks"]:
        before = old.get(check["id"])
        if before is None:
            continue
        if before["status"] == "passed" and check["status"] in NOT_PASSED:
            regressions.append({"check": check["id"], "what": f"was passed, now {check['status']}"})
        for name, fig in check.get("figures", {}).items():
            prev = before.get("figures", {}).get(name)
            better = fig.get("better")
            if not prev or better not in ("higher", "lower") or not prev.get("value"):
                continue
            compared += 1
            change = (fig["value"] - prev["value"]) / abs(prev["value"])
            worse = -change if better == "higher" else change
            entry = {
                "check": check["id"],
                "figure": name,
                "baseline": prev["value"],
                "now": fig["value"],
                "change": round(change, 4),
                "unit": fig.get("unit", ""),
            }
            if worse > tolerance:
                regressions.append({**entry, "what": f"{name} {change:+.1%} (tolerance {tolerance:.0%})"})
            elif -worse > tolerance:
                improvements.append(entry)
    diff = fingerprint_diff(baseline.get("fingerprint", {}), report.get("fingerprint", {}))
    return {
        "baseline_created": baseline.get("created"),
        "tolerance": tolerance,
        "figures_compared": compared,
        "regressions": regressions,
        "improvements": improvements,
        "fingerprint_changed": sorted(diff),
        "fingerprint_diff": diff,
    }
