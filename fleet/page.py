"""fleet.html: one self-contained page: the verdict, one row per host with a link to its own report, the
version drift, the outliers, each compared figure as a bar chart (inline SVG: no plotting library on the
controller), the hosts that did not run and why, and the changes against the baseline."""

from __future__ import annotations

import html
import json
from typing import Any

_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1200px}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 6px;font-size:13px;vertical-align:top;text-align:left}
.passed{background:#dfd}.failed{background:#fdd}.unreachable{background:#fec}.odd{font-weight:bold;color:#a00}
.banner{padding:.6em;font-weight:bold;font-size:1.2em;color:#fff}code{font-size:12px}
figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}
figcaption{font-size:12px;max-width:420px}"""
BAR_W, BAR_H = 260, 16


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _hosts_table(data: dict[str, Any]) -> str:
    rows = []
    for name, host in data["hosts"].items():
        gpus = host.get("gpus") or {}
        gpu_text = f"{gpus['count']} x {gpus['model']}" if gpus.get("count") else ("no GPU" if gpus else "")
        figures = "<br>".join(
            f"{_e(f['figure'])}: {f['value']:.4g} {_e(f['unit'])}" for f in host["headline"]
        )
        problem = host.get("problem") or {}
        why = _e(host.get("reason"))
        if problem.get("remedy"):
            why += f"<br>run: <code>{_e(problem['remedy'])}</code>"
        doctor = host.get("doctor") or {}
        if doctor.get("first_broken"):
            why += (
                f"<br>GPU diagnosis: BROKEN at {_e(doctor['first_broken'])}: {_e(doctor.get('cause'))}"
                f"<br>run: <code>{_e(doctor.get('remedy'))}</code>"
            )
        files = host.get("files") or {}
        links = " ".join(
            f'<a href="{_e(files[f])}">{_e(label)}</a>'
            for f, label in (("report.html", "report"), ("report.json", "json"), ("smoke.log", "log"))
            if f in files
        )
        rows.append(
            f'<tr class="{_e(host["verdict"])}"><td>{_e(name)}</td><td>{_e(host["verdict"])}</td>'
            f"<td>{_e(gpu_text)}</td><td>{_e(gpus.get('driver'))}</td><td>{figures}</td><td>{why}</td>"
            f"<td>{links}</td></tr>"
        )
    return (
        '<h2>Hosts</h2><table id="hosts"><thead><tr><th>host</th><th>verdict</th><th>GPUs</th><th>driver</th>'
        f"<th>key figures</th><th>why not passed</th><th>own report</th></tr></thead><tbody>{''.join(rows)}"
        "</tbody></table>"
    )


def _drift_table(data: dict[str, Any]) -> str:
    if not data["drift"]:
        return (
            "<h2>Version drift</h2><p>none: every host that sent a fingerprint holds the same versions.</p>"
        )
    rows = []
    for entry in data["drift"]:
        values = list(entry["values"].items())
        for i, (value, hosts) in enumerate(values):
            odd = set(hosts) & set(entry["odd"])
            field = f'<td rowspan="{len(values)}"><code>{_e(entry["field"])}</code></td>' if i == 0 else ""
            rows.append(
                f"<tr>{field}<td{' class=odd' if odd else ''}>{_e(value)}</td>"
                f"<td>{_e(', '.join(hosts))}</td></tr>"
            )
    return (
        f"<h2>Version drift</h2><p>{len(data['drift'])} fingerprint field(s) differ across the hosts; "
        "the most "
        'common value first, the others in bold.</p><table id="drift"><thead><tr><th>field</th><th>value</th>'
        f"<th>hosts</th></tr></thead><tbody>{''.join(rows)}</tbody></table>"
    )


def _outliers_table(data: dict[str, Any]) -> str:
    rule = data["outlier_rule"]
    text = (
        f"<p>Among hosts with the same GPUs, a figure worse than the group's median by more than "
        f"{rule['tolerance']:.0%} (groups of at least {rule['min_hosts']} hosts; "
        f"from {rule['z_min_hosts']} hosts "
        f"on also a modified z-score above {rule['modified_z']}); figures with a direction, of checks that "
        "passed.</p>"
    )
    if not data["outliers"]:
        return f"<h2>Outliers</h2>{text}<p>none.</p>"
    rows = "".join(
        f"<tr><td>{_e(o['host'])}</td><td>{_e(o['check'])}</td><td>{_e(o['figure'])}</td>"
        f"<td>{o['value']:.4g} {_e(o['unit'])}</td><td>{o['median']:.4g}</td><td>{o['worse_by']:.0%}</td>"
        f"<td>{_e(o['group'])} ({o['peers']} hosts)</td></tr>"
        for o in data["outliers"]
    )
    return (
        f'<h2>Outliers</h2>{text}<table id="outliers"><thead><tr><th>host</th><th>check</th><th>figure</th>'
        "<th>value</th><th>median</th><th>worse by</th><th>group</th></tr></thead>"
        f"<tbody>{rows}</tbody></table>"
    )


def _chart(entry: dict[str, Any]) -> str:
    """One figure across the hosts of a group: a bar per host, the median as a line, outliers in red."""
    values = entry["values"]
    top = max([*values.values(), entry["median"]]) or 1.0
    named = {o["host"] for o in entry["outliers"]}
    label_w = 10 + 7 * max(len(h) for h in values)
    height = BAR_H * len(values) + 24
    bars = []
    for i, (host, value) in enumerate(sorted(values.items())):
        width = max(BAR_W * value / top, 1) if value > 0 else 1
        y = 4 + i * BAR_H
        color = "#c33" if host in named else "#2a7"
        bars.append(
            f'<text x="{label_w - 4}" y="{y + 11}" text-anchor="end" font-size="11">{_e(host)}</text>'
            f'<rect x="{label_w}" y="{y}" width="{width:.1f}" height="{BAR_H - 4}" fill="{color}"/>'
            f'<text x="{label_w + width + 3:.1f}" y="{y + 11}" font-size="10">{value:.4g}</text>'
        )
    x = label_w + BAR_W * entry["median"] / top
    median = (
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height - 18}" stroke="#333" stroke-dasharray="3,2"/>'
        f'<text x="{x:.1f}" y="{height - 6}" font-size="10" text-anchor="middle">'
        f"median {entry['median']:.4g}</text>"
    )
    svg_w = label_w + BAR_W + 60
    caption = (
        f"{entry['check']} {entry['figure']} ({entry['unit'] or 'no unit'}, {entry['better']} is better)"
    )
    return (
        f'<figure><svg xmlns="http://www.w3.org/2000/svg" width="{svg_w}" height="{height}" role="img" '
        f'aria-label="{_e(caption)}">{"".join(bars)}{median}</svg><figcaption>{_e(caption)}</figcaption></figure>'
    )


def _charts(data: dict[str, Any]) -> str:
    groups: dict[str, list[str]] = {}
    for entry in data["compared"]:
        groups.setdefault(entry["group"], []).append(_chart(entry))
    if not groups:
        return "<h2>Figures across hosts</h2><p>no group has enough hosts to compare.</p>"
    return "<h2>Figures across hosts</h2>" + "".join(
        f"<h3>{_e(group)}</h3>{''.join(charts)}" for group, charts in groups.items()
    )


def _not_run(data: dict[str, Any]) -> str:
    rows = "".join(
        f'<tr class="{_e(h["verdict"])}"><td>{_e(name)}</td>'
        f"<td>{_e((h.get('problem') or {}).get('kind'))}</td>"
        f"<td>{_e(h.get('reason'))}</td></tr>"
        for name, h in data["hosts"].items()
        if (h.get("problem") or {}).get("kind") not in (None, "checks")
    )
    if not rows:
        return ""
    return (
        "<h2>Hosts that did not run the smoke test to the end</h2><p>With Ansible's reason.</p>"
        f'<table id="not-run"><thead><tr><th>host</th><th>what</th><th>reason</th></tr></thead>'
        f"<tbody>{rows}</tbody></table>"
    )


def _comparison(data: dict[str, Any]) -> str:
    comparison = data.get("comparison")
    if not comparison:
        return ""
    rows = []
    for name, entry in comparison["hosts"].items():
        what = [f"verdict {entry['verdict']['was']} -> {entry['verdict']['now']}"]
        what += [f"{r['check']}: {r['what']}" for r in entry["regressions"]]
        what += [f"{i['check']} {i['figure']} {i['change']:+.1%} (better)" for i in entry["improvements"]]
        if entry["fingerprint_changed"]:
            what.append("fingerprint: " + ", ".join(entry["fingerprint_changed"][:12]))
        rows.append(
            f'<tr class="{"failed" if entry["regressions"] else ""}"><td>{_e(name)}</td>'
            f"<td>{'<br>'.join(_e(w) for w in what)}</td></tr>"
        )
    extra = "".join(
        f"<p>{title}: {_e(', '.join(comparison[key]))}</p>"
        for key, title in (("new_hosts", "New hosts"), ("gone_hosts", "In the baseline, not in this run"))
        if comparison[key]
    )
    return (
        f"<h2>Against the baseline ({_e(comparison['baseline'])}, {_e(comparison['baseline_created'])})</h2>"
        f"<p>Figures compared with the smoke test's tolerance, {comparison['tolerance']:.0%}.</p>"
        f'<table id="comparison"><thead><tr><th>host</th><th>what changed</th></tr></thead>'
        f"<tbody>{''.join(rows)}</tbody></table>{extra}"
    )


def render(data: dict[str, Any]) -> str:
    run = data["run"]
    color = "#2a7" if data["verdict"] == "PASSED" else "#c33"
    counts = ", ".join(f"{n} {v}" for v, n in data["counts"].items() if n)
    limit = f" (limit {_e(run['limit'])})" if run.get("limit") else ""
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Fleet smoke test {_e(data["created"])}: {_e(data["verdict"])}</title><style>{_CSS}</style></head><body>
<h1>keras-workstation fleet smoke test</h1>
<div class="banner" id="verdict" style="background:{color}">{_e(data["verdict"])} ·
{len(data["hosts"])} hosts:
{_e(counts)} · level {_e(run.get("level"))} · {_e(data["created"])}</div>
<p>Inventory <code>{_e(run.get("inventory"))}</code>{limit};
Ansible exit {_e(data["ansible"].get("rc"))}, its output in <a href="ansible.log">ansible.log</a>.</p>
{_hosts_table(data)}
{_not_run(data)}
{_drift_table(data)}
{_outliers_table(data)}
{_charts(data)}
{_comparison(data)}
<h2>This run</h2><pre>{_e(json.dumps(run, indent=1))}</pre>
</body></html>"""
