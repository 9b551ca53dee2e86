"""One host's outcome, read from its folder of the run (hosts/<folder>/): host.json (what Ansible saw,
written by ansible/roles/fleet_smoke), and the fetched doctor.json, report.json, report.html and junit.xml.

A fetched file is checked before it is used: a broken one makes that host fail, with the reason, never this
program. The verdict is one of VERDICTS; `problem` says why a host did not pass.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from smoke_tests.baseline import baseline_problem
from smoke_tests.report import NOT_PASSED, headline_figures

VERDICTS = ("passed", "failed", "unreachable")
# The playbook's steps, in order, and what each did (host.json "steps").
STEPS = {
    "reach": "the connection and the toolkit's lookup",
    "identity": "the user check",
    "doctor": "the GPU diagnosis",
    "workdir": "making a temporary folder",
    "settings": "copying the smoke settings",
    "smoke": "the smoke test",
    "fetch": "fetching the reports",
    "cleanup": "removing the temporary folder",
}
REPORT_FILES = ("report.json", "report.html", "junit.xml")
MAX_JSON_BYTES = 64 * 2**20


def load_json(path: Path) -> tuple[Any, str | None]:
    """(data, None), or (None, why it cannot be used): missing, too big, not JSON."""
    try:
        size = path.stat().st_size
        if size > MAX_JSON_BYTES:
            return None, f"{path.name}: {size} bytes, more than a report can be ({MAX_JSON_BYTES})"
        return json.loads(path.read_text(errors="replace")), None
    except FileNotFoundError:
        return None, f"no {path.name}"
    except OSError as err:
        return None, f"{path.name}: cannot read it ({err.strerror})"
    except (ValueError, RecursionError) as err:
        return None, f"{path.name}: not valid JSON ({str(err)[:120]})"


def load_report(path: Path) -> tuple[dict[str, Any] | None, str | None]:
    """A fetched report.json that the fleet report can read, or why not."""
    data, problem = load_json(path)
    if problem:
        return None, problem
    if not isinstance(data, dict) or not isinstance(data.get("checks"), list):
        return None, f"{path.name}: not a smoke-test report (no 'checks' list)"
    if bad := baseline_problem(data):
        return None, f"{path.name}: not a smoke-test report ({bad})"
    if not isinstance(data.get("verdict"), str):
        return None, f"{path.name}: not a smoke-test report (no 'verdict')"
    return data, None


def check_key(check: dict[str, Any]) -> str:
    """A check's name across hosts and runs: category/name (e.g. speed/matmul_tflops[fp32])."""
    if isinstance(check.get("category"), str) and isinstance(check.get("name"), str):
        return f"{check['category']}/{check['name']}"
    return str(check["id"])


def numeric(value: Any) -> bool:
    return type(value) in (int, float) and math.isfinite(value)


def _figures(check: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {
        name: {"value": fig["value"], "unit": fig.get("unit", ""), "better": fig.get("better")}
        for name, fig in (check.get("figures") or {}).items()
        if isinstance(fig, dict) and numeric(fig.get("value"))
    }


def gpu_picture(report: dict[str, Any] | None, doctor: dict[str, Any] | None) -> dict[str, Any]:
    """GPU model(s), count and driver: the report's NVML picture, else the doctor's."""
    nvml = (report or {}).get("gpu") or (doctor or {}).get("nvml")
    nvml = nvml if isinstance(nvml, dict) else {}
    gpus = (
        [g for g in nvml.get("gpus") or [] if isinstance(g, dict)]
        if isinstance(nvml.get("gpus"), list)
        else []
    )
    names = sorted({str(g.get("name")) for g in gpus if g.get("name")})

    def text(key: str) -> str | None:
        return None if nvml.get(key) is None else str(nvml[key])

    return {
        "model": " + ".join(names) or None,
        "count": len(gpus),
        "driver": text("driver_version"),
        "cuda_driver": text("cuda_driver_version"),
        "reason": None if gpus else text("reason"),
    }


def group_of(gpus: dict[str, Any], fingerprint: dict[str, Any]) -> str:
    """Hosts whose figures compare: the same GPUs (model and count), or, without a GPU, the same CPU."""
    if gpus["count"]:
        return f"{gpus['count']} x {gpus['model']}"
    cpu = fingerprint.get("cpu") if isinstance(fingerprint.get("cpu"), dict) else {}
    return f"no GPU: {cpu.get('model') or 'unknown CPU'}, {cpu.get('cores') or '?'} cores"


def _doctor_summary(doctor: dict[str, Any] | None) -> dict[str, Any] | None:
    if not isinstance(doctor, dict) or not isinstance(doctor.get("layers"), list):
        return None
    broken = next(
        (layer for layer in doctor["layers"] if isinstance(layer, dict) and layer.get("status") == "BROKEN"),
        None,
    )
    return {
        "gpu_found": doctor.get("gpu_found"),
        "first_broken": broken and broken.get("name"),
        "cause": broken and broken.get("cause"),
        "remedy": broken and broken.get("remedy"),
    }


def _outcome(
    host: dict[str, Any], verdict: str, kind: str | None, message: str | None, remedy: str | None = None
):
    host["verdict"] = verdict
    host["problem"] = None if kind is None else {"kind": kind, "message": message, "remedy": remedy}
    host["reason"] = message
    return host


def _failed_step(steps: dict[str, Any]) -> tuple[str, dict[str, Any]] | None:
    """The first step that failed (a non-zero exit counted as failure by the playbook, a module error)."""
    for name in STEPS:
        result = steps.get(name)
        if isinstance(result, dict) and result.get("failed"):
            return name, result
    return None


def blank(name: str | None, folder: str | None) -> dict[str, Any]:
    """A host's record before anything is known of it."""
    return {
        "host": name,
        "folder": folder,
        "address": None,
        "toolkit": None,
        "files": {},
        "doctor": None,
        "gpus": None,
        "group": None,
        "fingerprint": {},
        "checks": {},
        "figures": {},
        "failed_checks": [],
        "headline": [],
    }


def read_host(folder: Path, run_dir: Path, name: str | None = None) -> dict[str, Any]:
    """One host's record for fleet.json (verdict, problem, GPUs, figures, fingerprint, links)."""
    rel = folder.relative_to(run_dir).as_posix()
    record, problem = load_json(folder / "host.json")
    host = blank(name, rel)
    if problem or not isinstance(record, dict) or not isinstance(record.get("steps"), dict):
        why = problem or "host.json is not a record of the playbook"
        return _outcome(
            host, "failed", "no_record", f"{why}: Ansible stopped before this host finished (ansible.log)"
        )
    host.update(host=record.get("host", name), address=record.get("address"), toolkit=record.get("toolkit"))
    steps = record["steps"]
    host["files"] = {
        f: f"{rel}/{f}" for f in (*REPORT_FILES, "doctor.json", "smoke.log") if (folder / f).is_file()
    }
    doctor, _ = load_json(folder / "doctor.json")
    host["doctor"] = _doctor_summary(doctor)
    report, report_problem = load_report(folder / "report.json")
    _from_report(host, report, doctor if isinstance(doctor, dict) else None)

    for step, title in STEPS.items():
        result = steps.get(step)
        if isinstance(result, dict) and result.get("unreachable"):
            msg = str(result.get("msg") or "no reason given")
            if step == "reach":
                return _outcome(host, "unreachable", "unreachable", msg)
            return _outcome(host, "unreachable", "lost", f"lost during {title}: {msg}")
    if record.get("toolkit_found") is False:
        return _outcome(
            host,
            "failed",
            "not_installed",
            f"the toolkit is not installed ({record.get('toolkit')} is missing): run make provision",
            f"make provision HOSTS={host['address'] or host['host']}",
        )
    if record.get("uid") == "0":
        return _outcome(
            host,
            "failed",
            "root",
            "Ansible connected as root: the smoke test runs as the workstation user, never root",
            "set ansible_user (or fleet_smoke_become_user) to the workstation user",
        )
    if failed := _failed_step(steps):
        step, result = failed
        msg = str(result.get("msg") or f"exit {result.get('rc')}")
        if step == "smoke" and (result.get("timedout") or "timed out" in msg.lower()):
            limit = f"its limit of {record.get('timeout_s')} s"
            return _outcome(host, "failed", "timeout", f"the smoke test ran past {limit} (--timeout): {msg}")
        return _outcome(host, "failed", "error", f"{STEPS[step]} failed: {msg}")
    smoke = steps.get("smoke")
    if not isinstance(smoke, dict) or smoke.get("skipped") or "rc" not in smoke:
        return _outcome(host, "failed", "error", "the smoke test did not run (ansible.log)")
    host["smoke_exit"] = rc = smoke["rc"]
    if report is None:
        tail = (record.get("smoke_stderr_tail") or smoke.get("msg") or "").strip().splitlines()[-1:] or [""]
        return _outcome(
            host,
            "failed",
            "bad_report" if (folder / "report.json").is_file() else "no_report",
            f"{report_problem} (smoke test exit {rc}{': ' + tail[0][:200] if tail[0] else ''})",
        )
    if rc == 0 and report["verdict"] == "PASSED":
        return _outcome(host, "passed", None, None)
    failing = host["failed_checks"]
    message = "; ".join(f"{c['check']}: {(c['message'] or c['status'])[:160]}" for c in failing[:3])
    more = f" (and {len(failing) - 3} more)" if len(failing) > 3 else ""
    return _outcome(
        host, "failed", "checks", (message + more) or f"report verdict {report['verdict']}, exit {rc}"
    )


def _from_report(host: dict[str, Any], report: dict[str, Any] | None, doctor: dict[str, Any] | None) -> None:
    fingerprint = (report or {}).get("fingerprint")
    fingerprint = fingerprint if isinstance(fingerprint, dict) else {}
    gpus = gpu_picture(report, doctor) if report or doctor else None
    host["gpus"] = gpus
    host["group"] = group_of(gpus, fingerprint) if report and gpus else None
    host["fingerprint"] = fingerprint
    if report is None:
        return
    host.update(
        level=report.get("level"),
        report_verdict=report["verdict"],
        created=report.get("created"),
        duration_s=report.get("duration_s"),
        backend=report.get("backend"),
    )
    checks = [c for c in report["checks"] if isinstance(c, dict)]
    for check in checks:
        key = check_key(check)
        host["checks"][key] = check["status"]
        if figures := _figures(check):
            host["figures"][key] = figures
        if check["status"] in NOT_PASSED:
            host["failed_checks"].append(
                {"check": key, "status": check["status"], "message": str(check.get("message") or "")}
            )
    host["headline"] = [
        {"check": check_key(c), "figure": n, "value": f["value"], "unit": f.get("unit", "")}
        for c, n, f in headline_figures(checks)
        if numeric(f.get("value"))
    ]


def read_hosts(run_dir: Path, planned: list[str]) -> dict[str, dict[str, Any]]:
    """Every planned host's record; a host with no folder or no host.json is one Ansible never finished."""
    found: dict[str, dict[str, Any]] = {}
    hosts_dir = run_dir / "hosts"
    for folder in sorted(p for p in hosts_dir.iterdir() if p.is_dir()) if hosts_dir.is_dir() else []:
        host = read_host(folder, run_dir)
        if host["host"] is None:  # no host.json: which host it was is unknown until matched below
            continue
        found[str(host["host"])] = host
    for name in planned:
        if name not in found:
            why = "no record: Ansible stopped before this host finished (see ansible.log)"
            found[name] = _outcome(blank(name, None), "failed", "no_record", why)
    return dict(sorted(found.items()))
