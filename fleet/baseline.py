"""Against an earlier fleet run (`BASELINE=old/fleet.json`): what changed on each host.

Per host: its verdict, checks that passed before and do not now, figures worse (or better) than before beyond
the smoke test's own baseline tolerance, and the fingerprint fields that changed. It is the smoke test's
baseline comparison (smoke_tests.baseline.compare) applied to each host's record, so the two agree.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fleet.host import VERDICTS, load_json, numeric
from smoke_tests.baseline import compare
from smoke_tests.settings import settings


class BaselineError(Exception):
    """The baseline cannot be used: one line for the user."""


def load_baseline(path: Path) -> dict[str, Any]:
    """An earlier fleet.json, checked before anything runs."""
    data, problem = load_json(path)
    if problem:
        raise BaselineError(f"--baseline {path}: {problem}")
    if not isinstance(data, dict) or not isinstance(data.get("hosts"), dict):
        raise BaselineError(f"--baseline {path}: not a fleet.json (no 'hosts' object)")
    for name, host in data["hosts"].items():
        if not isinstance(host, dict) or host.get("verdict") not in VERDICTS:
            raise BaselineError(
                f"--baseline {path}: hosts[{name[:60]!r}] has no verdict of {', '.join(VERDICTS)}"
            )
        where = f"--baseline {path}: hosts[{name[:60]!r}]"
        for key in ("checks", "figures", "fingerprint"):
            if not isinstance(host.get(key, {}), dict):
                raise BaselineError(f"{where}.{key} is not an object")
        for check, figures in host.get("figures", {}).items():
            for figure, fig in figures.items() if isinstance(figures, dict) else [(None, None)]:
                if not isinstance(fig, dict) or not numeric(fig.get("value")):
                    raise BaselineError(
                        f"{where}.figures[{check[:60]!r}][{str(figure)[:40]!r}] has no numeric value"
                    )
    return data


def _as_report(host: dict[str, Any]) -> dict[str, Any]:
    """A host's record in the shape smoke_tests.baseline.compare reads (checks: ids, statuses, figures)."""
    figures = host.get("figures") or {}
    return {
        "checks": [
            {
                "id": check,
                "status": status,
                "figures": figures.get(check, {}) if isinstance(figures, dict) else {},
            }
            for check, status in (host.get("checks") or {}).items()
        ],
        "fingerprint": host.get("fingerprint") or {},
    }


def compare_fleets(baseline: dict[str, Any], hosts: dict[str, dict[str, Any]], source: str) -> dict[str, Any]:
    tolerance = settings()["report"]["baseline_tolerance"]
    old_hosts = baseline["hosts"]
    changes = {}
    for name, host in hosts.items():
        before = old_hosts.get(name)
        if before is None:
            continue
        comparison = compare(_as_report(before), _as_report(host), tolerance)
        fields = [d["field"] for diffs in comparison["fingerprint_diff"].values() for d in diffs]
        entry = {
            "verdict": {"was": before["verdict"], "now": host["verdict"]},
            "regressions": comparison["regressions"],
            "improvements": comparison["improvements"],
            "fingerprint_changed": fields,
            "fingerprint_diff": comparison["fingerprint_diff"],
        }
        entry["changed"] = bool(
            before["verdict"] != host["verdict"] or entry["regressions"] or entry["improvements"] or fields
        )
        changes[name] = entry
    return {
        "baseline": source,
        "baseline_created": baseline.get("created"),
        "tolerance": tolerance,
        "hosts": changes,
        "new_hosts": sorted(set(hosts) - set(old_hosts)),
        "gone_hosts": sorted(set(old_hosts) - set(hosts)),
    }
