"""The smoke-test report: the verdict, report.json's parts, report.html and the terminal summary (the baseline
comparison it shows is smoke_tests/baseline.py's)."""

from __future__ import annotations

import base64
import html
import json
from pathlib import Path
from typing import Any

from gpu_doctor.model import TITLES
from smoke_tests import timing

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


# --- every device -------------------------------------------------------------------------------------------
PER_GPU_CHECK = ("multi_gpu", "per_gpu_outliers")
LINK_CHECK = ("multi_gpu", "p2p_bandwidth")


def devices(system: dict[str, Any], checks: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """One entry per device: each GPU NVML lists (index, name, PCI bus id, UUID, serial, PCIe link) with what
    the per-GPU check measured on it (figures, problems) and the interconnect's faults that name it, and the
    simulated devices the per-GPU check measured, if any."""
    check = next((c for c in checks if (c.get("category"), c.get("name")) == PER_GPU_CHECK), {})
    measured = (check.get("details") or {}).get("per_device", [])
    links = next((c for c in checks if (c.get("category"), c.get("name")) == LINK_CHECK), {})
    named: dict[int, list[str]] = {}  # the interconnect's faults, by each GPU they name
    for fault in (links.get("details") or {}).get("link_faults", []):
        for index in fault["gpus"]:
            named.setdefault(index, []).append(fault["problem"])
    by_gpu = {m["nvml_index"]: m for m in measured if m.get("nvml_index") is not None}
    out = []
    for g in system.get("gpus", []):
        m = by_gpu.get(g["index"], {})
        pcie = g.get("pcie", {})
        link = f"Gen{pcie.get('gen_max')} x{pcie.get('width_current')} of x{pcie.get('width_max')}"
        out.append({"index": g["index"], "name": g.get("name"), "pci_bus_id": g.get("pci_bus_id"),
                    "uuid": g.get("uuid"), "serial": g.get("serial"), "pcie": link,
                    "simulated": m.get("simulated", False), "figures": m.get("figures", {}),
                    "health": m.get("health", []),
                    "problems": [*m.get("problems", []), *named.get(g["index"], [])]})  # fmt: skip
    for m in measured:
        if m.get("nvml_index") is None:
            out.append({"index": m["index"], "name": m.get("name"), "pci_bus_id": None, "uuid": None,
                        "serial": None, "pcie": None, "simulated": True, "figures": m.get("figures", {}),
                        "health": [], "problems": m.get("problems", [])})  # fmt: skip
    return out


def device_label(device: dict[str, Any]) -> str:
    if device.get("pci_bus_id") is None:
        return f"simulated device {device['index']}"
    return f"GPU {device['index']} (bus {device['pci_bus_id']}, serial {device.get('serial')})"


def _devices_html(report: dict[str, Any], report_dir: Path) -> str:
    """The per-GPU table, and the P2P matrix beside it."""
    esc = html.escape
    found = report.get("devices") or []
    if len(found) < 2:
        return ""
    figures = sorted({name for d in found for name in d.get("figures", {})})
    head = "".join(f"<th>{esc(n)}</th>" for n in ("device", "name", "PCI bus id", "serial", "UUID", "PCIe"))
    head += "".join(f"<th>{esc(n)}</th>" for n in figures) + "<th>problems</th>"
    rows = []
    for d in found:
        cells = [device_label(d).split(" (")[0], d.get("name"), d.get("pci_bus_id"), d.get("serial"),
                 d.get("uuid"), d.get("pcie")]  # fmt: skip
        row = "".join(f"<td>{esc(str(c) if c is not None else '')}</td>" for c in cells)
        for name in figures:
            fig = d.get("figures", {}).get(name)
            low = fig and ((fig.get("floor") and fig["value"] < fig["floor"]) or fig.get("behind_siblings"))
            text = f"{fig['value']:.4g} {fig.get('unit', '')}" if fig else ""
            row += f'<td class="{"failed" if low else ""}">{esc(text)}</td>'
        row += f"<td>{'<br>'.join(esc(p) for p in d.get('problems', []))}</td>"
        rows.append(f'<tr class="{"failed" if d.get("problems") else ""}">{row}</tr>')
    note = (
        '<p class="warn">Simulated devices (the CPU split by XLA_FLAGS): the figures prove the method, not a '
        "speed.</p>"
        if any(d.get("simulated") for d in found)
        else ""
    )
    matrix = [
        _img(report_dir, p)
        for c in report["checks"]
        if c.get("category") == "multi_gpu"
        for p in c.get("plots", [])
        if p.endswith("p2p_matrix.png") and (report_dir / p).is_file()
    ]
    return (
        f'<h2>Every GPU</h2>{note}<table id="devices"><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}'
        f"</tbody></table>{''.join(matrix)}"
    )


# --- warnings and data: one source for the terminal summary and report.html ---------------------------------
def workload_data(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Per workload check, the dataset it trained on and was judged by (result.json `dataset`) and the regime
    it trained in (training images, epochs, steps: what its thresholds were calibrated for)."""
    rows = []
    for check in report["checks"]:
        details = check.get("details") or {}
        dataset = details.get("dataset") or {}
        if check["category"] == "workloads" and dataset.get("name"):
            rows.append({"check": check["name"], "dataset": dataset, "regime": details.get("regime")})
    return rows


def warnings(report: dict[str, Any]) -> list[str]:
    """Every warning of the run, in order: the summary prints each after "!!", report.html shows each."""
    out = []
    if state := report.get("incomplete"):
        out.append(f"the run did not finish: {state['message'][:300]}")
    gpu, diagnosis = report["gpu"], report.get("diagnosis") or {}
    broken = _layer(diagnosis, diagnosis.get("first_broken") or "")
    if diagnosis.get("staged_root"):
        out.append(f"staged root {diagnosis['staged_root']} (test hook GPU_DOCTOR_ROOT): not this machine")
    if broken:
        out.append(
            f"GPU diagnosis: BROKEN at the {TITLES.get(broken['name'], broken['name'])} layer: "
            f"{broken['cause']}"
        )
        out.append(f"run: {broken['remedy']}")
    elif not diagnosis.get("gpu_found", gpu["available"]):
        out.append(f"no NVIDIA GPU found: {diagnosis.get('no_gpu_reason') or gpu['reason']}")
        out.append(
            "everything that can run ran on the CPU"
            + (" (REQUIRE_GPU=1: a failure)" if report["require_gpu"] else "")
        )
    out += [
        f"{device_label(device)}: {device['problems'][0][:100]}"
        for device in report.get("devices") or []
        if device.get("problems")
    ]
    fallbacks = {
        row["dataset"]["name"]: row["dataset"]
        for row in workload_data(report)
        if row["dataset"].get("fallback")
    }
    for name, dataset in fallbacks.items():
        out.append(
            f"the workloads trained on the fallback {name} ({dataset.get('source')}), NOT MNIST: no "
            "MNIST was found (--data, Keras's cache or download) and Fashion-MNIST is not installed"
        )
    return out


def _warnings_html(report: dict[str, Any]) -> str:
    """Every warning, then every note (the backend chosen, the warm-up), as the terminal summary has them."""
    esc = html.escape
    return "".join(f'<p class="warn">{esc(w[:1].upper() + w[1:])}</p>' for w in warnings(report)) + "".join(
        f'<p class="note">Note: {esc(n)}</p>' for n in report.get("notes") or []
    )


def _regime(regime: dict[str, Any] | None) -> str:
    if not regime:
        return ""
    epochs = f"{regime['epochs']} epoch" + ("s" if regime["epochs"] != 1 else "")
    return f"{regime['train_images']:,} images x {epochs} = {regime['steps']:,} steps"


def _data_html(report: dict[str, Any]) -> str:
    """The data each workload was judged on: dataset (by content), where from, sizes, fallback."""
    esc = html.escape
    rows = "".join(
        f'<tr class="{"failed" if d.get("fallback") else "passed"}"><td>{esc(row["check"])}</td>'
        f"<td>{esc(str(d.get('name')))}</td><td>{esc(str(d.get('source')))}</td>"
        f"<td>{d.get('train_size', '')}</td><td>{d.get('test_size', '')}</td>"
        f"<td>{_regime(row['regime'])}</td>"
        f"<td>{'yes: NOT MNIST' if d.get('fallback') else 'no'}</td></tr>"
        for row in workload_data(report)
        for d in [row["dataset"]]
    )
    if not rows:
        return ""
    return (
        "<h2>Data the workloads were judged on</h2><p>Each dataset is named by its content and judged by its "
        "own thresholds (workloads/harness/thresholds.toml); sizes are what the run trained and tested on."
        '</p><table id="data"><thead><tr><th>check</th><th>dataset</th><th>source</th><th>train</th>'
        f"<th>test</th><th>regime</th><th>fallback</th></tr></thead><tbody>{rows}</tbody></table>"
    )


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


def incomplete_html(report: dict[str, Any]) -> str:
    """A run that did not finish: how the check process ended, the check that was running, its last words."""
    state = report.get("incomplete")
    if not state:
        return ""
    esc = html.escape
    not_run = ", ".join(state.get("not_run", [])[:20]) or "none"
    words = "\n".join(state.get("last_words", [])) or "(no output)"
    return (
        f'<h2>The run did not finish</h2><p class="warn" id="incomplete">{esc(state["message"])}</p>'
        f"<p>Its last words (pytest.log):</p><pre>{esc(words)}</pre><p>Not run: {esc(not_run)}</p>"
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
    color = "#2a7" if report["verdict"] == "PASSED" else "#c33"
    return f"""<!DOCTYPE html><html lang="en"><head><meta charset="utf-8">
<title>Smoke test {esc(report["created"])}: {report["verdict"]}</title><style>{_CSS}</style></head><body>
<h1>keras-workstation smoke test</h1>
<div class="banner" id="verdict" style="color:#fff;background:{color}">{report["verdict"]} ·
level {esc(report["level"])} · backend {esc(report["backend"])} · {report["duration_s"]} s ·
{esc(report["created"])}</div>
{_warnings_html(report)}
{incomplete_html(report)}
{_diagnosis_html(diagnosis)}
<h2>Checks</h2>
<table id="checks"><thead><tr><th>part</th><th>check</th><th>status</th><th>s</th><th>figures</th>
<th>message</th></tr></thead><tbody>{"".join(rows)}</tbody></table>
{_devices_html(report, report_dir)}
{_data_html(report)}
{comp_html}
{breakdown_html(report)}
<h2>Plots</h2>{"".join(plots + extra) or "<p>none</p>"}
<h2>Environment fingerprint</h2><pre>{esc(json.dumps(report["fingerprint"], indent=1, default=str))}</pre>
</body></html>"""


def headline_figures(checks: list[dict[str, Any]]) -> list[tuple[dict[str, Any], str, dict[str, Any]]]:
    """The figures a reader looks at first: the speed checks' and the workloads' "higher is better" ones
    (the workloads' training-set metrics left out), as (check, figure name, figure)."""
    return [
        (check, name, fig)
        for check in checks
        if check.get("category") in ("speed", "workloads")
        for name, fig in (check.get("figures") or {}).items()
        if fig.get("better") == "higher" and not name.startswith("train_")
    ]


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
    lines += [f"  !! {w}" for w in warnings(report)]
    state = report.get("incomplete")
    if state and state.get("last_words"):
        lines.append("  !! its last words (pytest.log):")
        lines += [f"       {w[:150]}" for w in state["last_words"][-6:]]
    lines += [f"  note: {note}" for note in report.get("notes") or []]  # the backend chosen, the warm-up
    gpu = report["gpu"]
    if gpu["gpus"]:
        models = [str(g.get("name")) for g in gpu["gpus"]]
        names = ", ".join(
            f"{models.count(m)}x {m}" if models.count(m) > 1 else m for m in dict.fromkeys(models)
        )
        lines.append(
            f"  GPU: {names}; driver {gpu.get('driver_version')} (CUDA {gpu.get('cuda_driver_version')})"
        )
    simulated = [d for d in report.get("devices") or [] if d.get("simulated")]
    if simulated:
        lines.append(f"  multi-GPU checks on {len(simulated)} simulated devices (XLA_FLAGS splits the CPU): "
                     "they prove the method, not a speed")  # fmt: skip
    used = list(dict.fromkeys(row["dataset"]["name"] for row in workload_data(report)))
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
    for check, name, fig in headline_figures(report["checks"]):
        lines.append(f"  {check['name'][:28]:28} {name[:26]:26} {fig['value']:>10.4g} {fig.get('unit', '')}")
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
