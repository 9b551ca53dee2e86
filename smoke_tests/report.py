"""The smoke-test report: report.json, report.html, the terminal summary, and the baseline comparison."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from gpu_doctor.model import TITLES
from smoke_tests import timing

SCHEMA_VERSION = 1
STATUS_ORDER = ("failed", "error", "invalid", "passed", "skipped")
NOT_PASSED = {"failed", "error", "invalid"}


# --- verdict ------------------------------------------------------------------------------------------------
def counts(checks: list[dict[str, Any]]) -> dict[str, int]:
    out = dict.fromkeys(STATUS_ORDER, 0)
    for c in checks:
        out[c["status"]] = out.get(c["status"], 0) + 1
    return out


def verdict(checks: list[dict[str, Any]], comparison: dict[str, Any] | None = None) -> str:
    """PASSED when no check failed, errored or was invalid (and no regression against the baseline)."""
    if not checks:
        return "NOT RUN"
    if any(c["status"] in NOT_PASSED for c in checks):
        return "FAILED"
    if comparison and comparison.get("regressions"):
        return "FAILED"
    return "PASSED"


# --- baseline -----------------------------------------------------------------------------------------------
def _flatten(value: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for k, v in value.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out
    if isinstance(value, list):
        out = {}
        for i, v in enumerate(value):
            out.update(_flatten(v, f"{prefix}[{i}]"))
        return out
    return {prefix: value}


def fingerprint_diff(old: dict[str, Any], new: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """Fingerprint fields that differ, grouped by part (packages, gpus, build, ...)."""
    a, b = _flatten(old or {}), _flatten(new or {})
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


# --- charts -------------------------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def ladder_chart(ladder: list[dict[str, Any]], path: Path, device: str) -> Path:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 3.2))
    labels = [r["rung"] for r in ladder]
    values = [r["images_per_s"] for r in ladder]
    colors = ["#2a7" if r["valid"] else "#c33" for r in ladder]
    ax.barh(labels[::-1], values[::-1], color=colors[::-1])
    for i, r in enumerate(ladder[::-1]):
        note = f" x{r['gpu_cpu_ratio']:.1f} vs CPU" if r.get("gpu_cpu_ratio") else ""
        ax.text(r["images_per_s"], i, f" {r['images_per_s']:.0f}{note}", va="center", fontsize=8)
    ax.set_xlabel(f"training images/s ({device}; cumulative rungs, red = throttled)")
    ax.set_title("MNIST stage 5 training speed ladder")
    ax.set_xlim(0, max(values) * 1.35)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def telemetry_chart(checks: list[dict[str, Any]], path: Path) -> Path | None:
    series = [(c["name"], w) for c in checks for w in c.get("telemetry", []) if w.get("samples")]
    if not series:
        return None
    plt = _pyplot()
    fig, axes = plt.subplots(4, 1, figsize=(8, 7), sharex=True)
    offset = 0.0
    for _, window in series:
        t = [offset + s["t"] for s in window["samples"]]
        for ax, key in zip(axes, ("util_pct", "sm_mhz", "power_w", "temperature_c"), strict=True):
            ax.plot(t, [s[key] if isinstance(s[key], int | float) else None for s in window["samples"]], lw=1)
        axes[0].text(offset, 102, window["label"], fontsize=6, rotation=30)
        offset = (t[-1] if t else offset) + 0.5
    for ax, label in zip(axes, ("utilization %", "SM clock MHz", "power W", "temperature C"), strict=True):
        ax.set_ylabel(label, fontsize=8)
    axes[-1].set_xlabel("seconds inside timed windows (concatenated)")
    fig.tight_layout()
    fig.savefig(path, dpi=80)
    plt.close(fig)
    return path


# --- HTML ---------------------------------------------------------------------------------------------------
_CSS = """body{font-family:sans-serif;margin:1.5em;max-width:1100px}table{border-collapse:collapse;width:100%}
td,th{border:1px solid #ccc;padding:4px 6px;font-size:13px;vertical-align:top;text-align:left}
.passed{background:#dfd}.failed,.error,.invalid{background:#fdd}.skipped{background:#eee}
.banner{padding:.6em;font-weight:bold;font-size:1.2em}.warn{background:#ffc;padding:.5em;font-weight:bold}
img{max-width:min(100%,640px);border:1px solid #ddd;margin:4px 0}code,pre{font-size:12px}
.bar{display:flex;height:14px;min-width:1px}.bar span{display:block;height:100%}
.legend span{display:inline-block;padding:0 6px;margin-right:6px;font-size:12px}"""


def _img(report_dir: Path, rel: str) -> str:
    data = base64.b64encode((report_dir / rel).read_bytes()).decode()
    return (
        f'<figure><img alt="{html.escape(rel)}" src="data:image/png;base64,{data}"><figcaption>'
        f"{html.escape(rel)}</figcaption></figure>"
    )


def _figures_text(check: dict[str, Any]) -> str:
    parts = []
    for name, fig in check.get("figures", {}).items():
        value = fig["value"]
        shown = f"{value:.4g}" if isinstance(value, float) else str(value)
        spread = f" ±{fig['spread']:.0%}" if isinstance(fig.get("spread"), float) else ""
        parts.append(f"{html.escape(name)}: {shown} {html.escape(str(fig.get('unit', '')))}{spread}")
    return "<br>".join(parts)


def _layer(diagnosis: dict[str, Any], name: str) -> dict[str, Any]:
    return next((layer for layer in diagnosis.get("layers", []) if layer["name"] == name), {})


def _diagnosis_html(diagnosis: dict[str, Any]) -> str:
    """The GPU doctor's layers: status, what was found, cause and the command to run."""
    esc = html.escape
    if not diagnosis.get("layers"):
        return ""
    css = {"OK": "passed", "WARN": "skipped", "BROKEN": "failed"}
    rows = "".join(
        f'<tr class="{css.get(layer["status"], "skipped")}">'
        f"<td>{esc(TITLES.get(layer['name'], layer['name']))}</td><td>{esc(layer['status'])}</td>"
        f"<td>{esc(layer.get('summary') or '')}</td><td>{esc(layer.get('cause') or '')}</td>"
        f"<td><code>{esc(layer.get('remedy') or '')}</code></td></tr>"
        for layer in diagnosis["layers"]
    )
    staged = diagnosis.get("staged_root")
    note = (
        f'<p class="warn">Staged root {esc(staged)} (test hook GPU_DOCTOR_ROOT): not this machine.</p>'
        if staged
        else ""
    )
    return (
        f'<h2>GPU diagnosis</h2>{note}<table id="diagnosis"><thead><tr><th>layer</th><th>status</th>'
        f"<th>found</th><th>cause</th><th>run</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _seconds(value: float) -> str:
    return f"{value:.1f}" if value >= 0.1 else f"{value:.2f}"


def breakdown_html(report: dict[str, Any]) -> str:
    """Where the time went: one stacked bar per check (start-up, data, compile, steady training,
    evaluation, plots, other), all on one scale, with the whole run's timeline below."""
    esc = html.escape
    checks = [c for c in report["checks"] if c.get("breakdown")]
    if not checks:
        return ""
    longest = max(sum(c["breakdown"].values()) for c in checks) or 1.0
    legend = "".join(
        f'<span style="background:{color}" title="{esc(what)}">{esc(name)}</span>'
        for name, (what, color) in timing.CATEGORIES.items()
    )
    rows = []
    for c in checks:
        total = sum(c["breakdown"].values())
        segments = "".join(
            f'<span class="seg-{esc(name)}" style="width:{100 * s / longest:.2f}%;'
            f'background:{timing.CATEGORIES[name][1]}" title="{esc(name)}: {_seconds(s)} s"></span>'
            for name, s in c["breakdown"].items()
            if s > 0 and name in timing.CATEGORIES
        )
        parts = ", ".join(f"{name} {_seconds(s)}" for name, s in c["breakdown"].items() if s >= 0.05)
        rows.append(
            f"<tr><td>{esc(c['category'])}/{esc(c['name'])}</td><td>{_seconds(total)}</td>"
            f'<td style="width:55%"><div class="bar">{segments}</div></td><td>{esc(parts)}</td></tr>'
        )
    totals = report.get("time") or timing.totals(checks)
    summed = ", ".join(f"{name} {s:.1f} s" for name, s in totals.items() if s)
    line = report.get("timeline")
    suite = (
        f"<p>The whole run: {line['total_s']} s: {line['before_checks_s']} s before the check process, "
        f"{line['check_process_start_s']} s its start-up (interpreter, pytest, imports, collection), "
        f"{line['checks_s']} s in the checks, {line['between_checks_s']} s between them, "
        f"{line['after_checks_s']} s after them (the report).</p>"
        if line
        else ""
    )
    return (
        f'<h2>Where the time went</h2><p class="legend">{legend}</p>'
        f'<table id="breakdown"><thead><tr><th>check</th><th>s</th><th>breakdown</th><th>seconds</th></tr>'
        f"</thead><tbody>{''.join(rows)}</tbody></table><p>All checks: {esc(summed)}.</p>{suite}"
    )


def render_html(report: dict[str, Any], report_dir: Path) -> str:
    esc = html.escape
    gpu = report["gpu"]
    diagnosis = report.get("diagnosis") or {}
    rows = []
    for c in report["checks"]:
        note = esc(c.get("message") or c.get("details", {}).get("verdict", "") or "")
        warns = "".join(f"<br>⚠ {esc(w)}" for w in c.get("warnings", []))
        rows.append(
            f'<tr class="{c["status"]}"><td>{esc(c["category"])}</td><td>{esc(c["name"])}</td>'
            f"<td>{c['status']}</td><td>{c['duration_s']}</td><td>{_figures_text(c)}</td><td>{note}{warns}</td></tr>"
        )
    plots = [
        f"<h3>{esc(c['category'])}/{esc(c['name'])}</h3>" + "".join(_img(report_dir, p) for p in c["plots"])
        for c in report["checks"]
        if c.get("plots") and all((report_dir / p).is_file() for p in c["plots"])
    ]
    extra = [
        "<h3>NVML telemetry in the timed windows</h3>" + _img(report_dir, p)
        for p in report.get("charts", [])
        if (report_dir / p).is_file()
    ]
    comparison = report.get("comparison")
    comp_html = ""
    if comparison:
        regs = "".join(f"<li>{esc(r['check'])}: {esc(r['what'])}</li>" for r in comparison["regressions"])
        changed = ", ".join(comparison["fingerprint_changed"]) or "none"
        comp_html = (
            f"<h2>Against the baseline ({esc(str(comparison['baseline_created']))})</h2>"
            f"<p>Tolerance {comparison['tolerance']:.0%}; {comparison['figures_compared']} figures "
            f"compared.</p><p>Regressions:</p><ul>{regs or '<li>none</li>'}</ul>"
            f"<p>Fingerprint parts that differ: {esc(changed)}</p>"
        )
    no_gpu = (
        ""
        if diagnosis.get("gpu_found", gpu["available"])
        else (
            f'<p class="warn">No NVIDIA GPU found: '
            f"{esc(str(diagnosis.get('no_gpu_reason') or gpu['reason']))}</p>"
        )
    )
    color = "#2a7" if report["verdict"] == "PASSED" else "#c33"
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Smoke test {esc(report["created"])}: {report["verdict"]}</title><style>{_CSS}</style></head><body>
<h1>keras-workstation smoke test</h1>
<div class="banner" id="verdict" style="color:#fff;background:{color}">{report["verdict"]} ·
level {esc(report["level"])} · backend {esc(report["backend"])} · {report["duration_s"]} s ·
{esc(report["created"])}</div>
{no_gpu}
{_diagnosis_html(diagnosis)}
<h2>Checks</h2>
<table id="checks"><thead><tr><th>part</th><th>check</th><th>status</th><th>s</th><th>figures</th>
<th>message</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
{comp_html}
{breakdown_html(report)}
<h2>Plots</h2>{"".join(plots + extra) or "<p>none</p>"}
<h2>Environment fingerprint</h2><pre>{esc(json.dumps(report["fingerprint"], indent=1, default=str))}</pre>
</body></html>"""


# --- terminal -----------------------------------------------------------------------------------------------
def summary_text(report: dict[str, Any], report_dir: Path) -> str:
    """The one-screen summary: verdict, GPU state, counts, failures, headline figures, where the files are."""
    lines = ["", "=" * 78]
    c = report["counts"]
    lines.append(
        f"SMOKE TEST {report['verdict']}  ({report['level']}, backend {report['backend']}, "
        f"{report['duration_s']} s)"
    )
    lines.append("  " + ", ".join(f"{v} {k}" for k, v in c.items() if v))
    if report.get("time"):
        spent = ", ".join(f"{k} {v:.1f}" for k, v in report["time"].items() if v >= 0.05)
        lines.append(f"  time in the checks (s): {spent}")
    gpu, diagnosis = report["gpu"], report.get("diagnosis") or {}
    broken = _layer(diagnosis, diagnosis.get("first_broken") or "")
    if diagnosis.get("staged_root"):
        lines.append(
            f"  !! staged root {diagnosis['staged_root']} (test hook GPU_DOCTOR_ROOT): not this machine"
        )
    if broken:
        lines.append(
            f"  !! GPU diagnosis: BROKEN at the {TITLES.get(broken['name'], broken['name'])} layer: "
            f"{broken['cause']}"
        )
        lines.append(f"  !! run: {broken['remedy']}")
    elif not diagnosis.get("gpu_found", gpu["available"]):
        lines.append(f"  !! no NVIDIA GPU found: {diagnosis.get('no_gpu_reason') or gpu['reason']}")
        lines.append(
            "  !! everything that can run ran on the CPU"
            + (" (REQUIRE_GPU=1: a failure)" if report["require_gpu"] else "")
        )
    if gpu["gpus"]:
        names = ", ".join(str(g.get("name")) for g in gpu["gpus"])
        lines.append(
            f"  GPU: {names}; driver {gpu.get('driver_version')} (CUDA {gpu.get('cuda_driver_version')})"
        )
    used = {}
    for check in report["checks"]:
        dataset = (check.get("details") or {}).get("dataset") or {}
        if check["category"] == "workloads" and dataset.get("name"):
            used.setdefault(dataset["name"], dataset)
    for name, dataset in used.items():
        if dataset.get("fallback"):
            lines.append(
                f"  !! the workloads trained on the fallback {name} ({dataset.get('source')}), NOT MNIST: no "
                "MNIST was found (--data, Keras's cache or download) and Fashion-MNIST is not installed"
            )
    if used:
        lines.append(
            f"  data: {', '.join(used)} (judged by its own thresholds: workloads/harness/thresholds.toml)"
        )
    for check in report["checks"]:
        if check["status"] in NOT_PASSED:
            lines.append(
                f"  {check['status'].upper():8} {check['category']}/{check['name']}: "
                f"{(check.get('message') or '')[:110]}"
            )
    for check in report["checks"]:
        for name, fig in check.get("figures", {}).items():
            headline = check["category"] in ("speed", "workloads") and not name.startswith("train_")
            if fig.get("better") == "higher" and headline:
                lines.append(
                    f"  {check['name'][:28]:28} {name[:26]:26} {fig['value']:>10.4g} {fig.get('unit', '')}"
                )
    comparison = report.get("comparison")
    if comparison:
        lines.append(
            f"  baseline: {len(comparison['regressions'])} regression(s) beyond "
            f"{comparison['tolerance']:.0%}; fingerprint changed: "
            f"{', '.join(comparison['fingerprint_changed']) or 'no'}"
        )
        lines += [f"    - {r['check']}: {r['what']}" for r in comparison["regressions"][:5]]
    lines.append(f"  report: {report_dir / 'report.html'}")
    lines.append("=" * 78)
    return "\n".join(lines)


def figures_text(report: dict[str, Any]) -> str:
    """Every check's status and figures, for the terminal when report.json could not be written (a full disk):
    the run's numbers are not lost."""
    lines = ["every check and figure of this run (report.json could not be written):"]
    for check in report["checks"]:
        figures = "; ".join(
            f"{name} {fig.get('value')} {fig.get('unit') or ''}".rstrip()
            for name, fig in (check.get("figures") or {}).items()
            if isinstance(fig, dict)
        )
        lines.append(f"  {check['status'].upper():8} {check['category']}/{check['name']}  {figures}".rstrip())
    return "\n".join(lines)
