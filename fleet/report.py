"""The fleet report: fleet.json (the interface for scripts), fleet.html, junit.xml, and the terminal summary.

fleet.json: `hosts` (host name -> {verdict: passed|failed|unreachable, problem, reason, gpus, figures, ...}),
`drift` ([{field, values: {value: [hosts]}, odd}]), `outliers` ([{host, check, figure, value, median, ...}]),
`comparison` (with a baseline), `verdict` (PASSED only when every host passed).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from fleet import junit, page
from fleet.baseline import compare_fleets
from fleet.drift import find_drift
from fleet.host import VERDICTS, read_hosts
from fleet.outliers import compare_figures, find_outliers, rules
from workloads.atomic import atomic_write, write_json

SCHEMA_VERSION = 1
CONTROL = re.compile(r"[\x00-\x09\x0b-\x1f\x7f]")


def build(
    run_dir: Path,
    plan: dict[str, Any],
    ansible: dict[str, Any],
    baseline: dict[str, Any] | None = None,
    baseline_source: str | None = None,
) -> dict[str, Any]:
    """Read every host's folder and compare the hosts; `plan`: the run's settings and the hosts Ansible was
    given; `ansible`: how ansible-playbook ended (rc, interrupted)."""
    hosts = read_hosts(run_dir, plan["hosts"])
    compared = compare_figures(hosts)
    groups: dict[str, list[str]] = {}
    for name, host in hosts.items():
        if host.get("group"):
            groups.setdefault(host["group"], []).append(name)
    data: dict[str, Any] = {
        "schema_version": SCHEMA_VERSION,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "run": {k: v for k, v in plan.items() if k != "hosts"},
        "ansible": ansible,
        "counts": {v: sum(1 for h in hosts.values() if h["verdict"] == v) for v in VERDICTS},
        "hosts": hosts,
        "groups": groups,
        "drift": find_drift({name: host["fingerprint"] for name, host in hosts.items()}),
        "outlier_rule": rules(),
        "outliers": find_outliers(compared),
        "compared": compared,
    }
    if baseline is not None:
        data["comparison"] = compare_fleets(baseline, hosts, baseline_source or "")
    if ansible.get("interrupted"):
        data["verdict"] = "INTERRUPTED"
    elif hosts and all(h["verdict"] == "passed" for h in hosts.values()):
        data["verdict"] = "PASSED"
    else:
        data["verdict"] = "FAILED"
    return data


def write(run_dir: Path, data: dict[str, Any]) -> None:
    """fleet.json, fleet.html and junit.xml, each written whole or not at all."""
    write_json(run_dir / "fleet.json", data)
    html = page.render(data)
    atomic_write(run_dir / "fleet.html", lambda tmp: tmp.write_text(html))
    xml = junit.render(data)
    atomic_write(run_dir / "junit.xml", lambda tmp: tmp.write_bytes(xml))


def _figures_line(host: dict[str, Any], limit: int = 3) -> str:
    return ", ".join(f"{f['figure']} {f['value']:.4g} {f['unit']}".strip() for f in host["headline"][:limit])


def _gpus(host: dict[str, Any]) -> str:
    gpus = host.get("gpus")
    if not gpus:
        return "-"
    return f"{gpus['count']} x {gpus['model']}" if gpus["count"] else "no GPU"


def summary_text(data: dict[str, Any], run_dir: Path) -> str:
    """One screen: the verdict, a line per host, drift, outliers, changes against the baseline, the files."""
    counts = data["counts"]
    lines = ["", "=" * 78]
    hosts = f"{len(data['hosts'])} host{'' if len(data['hosts']) == 1 else 's'}"
    lines.append(
        f"FLEET SMOKE TEST {data['verdict']}  ({hosts}, level {data['run'].get('level')}): "
        + ", ".join(f"{n} {v}" for v, n in counts.items() if n)
    )
    width = max([len(h) for h in data["hosts"]] + [4])
    for name, host in data["hosts"].items():
        verdict = host["verdict"] if host["verdict"] == "passed" else host["verdict"].upper()
        driver = (host.get("gpus") or {}).get("driver") or "-"
        figures = _figures_line(host) if host["verdict"] == "passed" else ""
        lines.append(f"  {name:{width}}  {verdict:11} {_gpus(host)[:24]:24} {driver:10} {figures}".rstrip())
        indent = " " * (width + 4)
        if host["reason"]:
            lines.append(f"{indent}{host['reason'][:300]}")
        if (host.get("problem") or {}).get("remedy"):
            lines.append(f"{indent}run: {host['problem']['remedy']}")
        doctor = host.get("doctor") or {}
        if doctor.get("first_broken"):
            lines.append(f"{indent}GPU diagnosis: BROKEN at {doctor['first_broken']}: {doctor.get('cause')}")
            lines.append(f"{indent}run: {doctor.get('remedy')}")
    drift = data["drift"]
    lines.append(f"  version drift: {len(drift)} field(s) differ" + (":" if drift else ""))
    for entry in drift[:8]:
        values = entry["values"]
        odd = [
            f"{value} on {', '.join(hosts)}"
            for value, hosts in values.items()
            if set(hosts) & set(entry["odd"])
        ]
        common = next(iter(values)) if len(entry["odd"]) < sum(len(h) for h in values.values()) else None
        others = f" (others: {common})" if common is not None else ""
        lines.append(f"    {entry['field']}: {'; '.join(odd)[:140]}{others[:60]}")
    if len(drift) > 8:
        lines.append(f"    ... and {len(drift) - 8} more (fleet.html, fleet.json)")
    outliers = data["outliers"]
    rule = data["outlier_rule"]
    lines.append(
        f"  outliers (worse than their group's median by more than {rule['tolerance']:.0%}): {len(outliers)}"
    )
    for o in outliers[:8]:
        lines.append(
            f"    {o['host']}: {o['check']} {o['figure']} {o['value']:.4g} {o['unit']} against a median of "
            f"{o['median']:.4g} ({o['worse_by']:.0%} worse; {o['peers']} hosts: {o['group']})"
        )
    if comparison := data.get("comparison"):
        changed = [name for name, entry in comparison["hosts"].items() if entry["changed"]]
        lines.append(f"  against {comparison['baseline']}: {len(changed)} host(s) changed")
        for name in changed[:8]:
            entry = comparison["hosts"][name]
            parts = []
            if entry["verdict"]["was"] != entry["verdict"]["now"]:
                parts.append(f"{entry['verdict']['was']} -> {entry['verdict']['now']}")
            parts += [
                r["what"] if "figure" not in r else f"{r['check']} {r['what']}"
                for r in entry["regressions"][:3]
            ]
            if entry["fingerprint_changed"]:
                parts.append(f"fingerprint: {', '.join(entry['fingerprint_changed'][:4])}")
            lines.append(f"    {name}: {'; '.join(parts)[:150]}")
        for key, title in (("new_hosts", "new"), ("gone_hosts", "not in this run")):
            if comparison[key]:
                lines.append(f"    {title}: {', '.join(comparison[key])}")
    lines.append(f"  report: {run_dir / 'fleet.html'}")
    lines.append("=" * 78)
    # Text from the hosts' reports reaches the terminal: no control characters (escape sequences) from them.
    return CONTROL.sub("?", "\n".join(lines))
