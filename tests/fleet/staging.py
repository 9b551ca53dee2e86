"""Run folders as `make fleet-smoke` leaves them (plan.json, ansible.json, hosts/<folder>/host.json and the
fetched files), staged without Ansible, for the report's tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

OK = {"failed": False, "rc": 0}


def check(
    category: str, name: str, status: str = "passed", message: str = "", **figures: float | tuple[float, str]
) -> dict[str, Any]:
    """A report.json check; a figure is a value ("higher is better") or (value, better)."""
    figs = {}
    for key, fig in figures.items():
        value, better = fig if isinstance(fig, tuple) else (fig, "higher")
        figs[key] = {"value": value, "unit": "u", "better": better}
    return {
        "id": f"test_x.py::test_{name}",
        "category": category,
        "name": name,
        "status": status,
        "message": message,
        "duration_s": 1.0,
        "figures": figs,
    }


def report(
    checks: list[dict[str, Any]],
    fingerprint: dict[str, Any] | None = None,
    gpus: list[str] = (),
    driver: str | None = None,
) -> dict[str, Any]:
    failed = any(c["status"] in ("failed", "error", "invalid") for c in checks)
    return {
        "schema_version": 1,
        "created": "2026-12-04T10:00:00+00:00",
        "level": "quick",
        "backend": "tensorflow",
        "gpu": {
            "available": bool(gpus),
            "reason": None if gpus else "no NVIDIA GPU found",
            "gpus": [{"index": i, "name": n} for i, n in enumerate(gpus)],
            "driver_version": driver,
        },
        "checks": checks,
        "fingerprint": fingerprint if fingerprint is not None else fingerprint_of(),
        "verdict": "FAILED" if failed else "PASSED",
        "duration_s": 10.0,
    }


def fingerprint_of(**changes: Any) -> dict[str, Any]:
    """A fingerprint like workloads.harness.fingerprint's, with `changes` (dotted keys: "installed.rich")."""
    fp: dict[str, Any] = {
        "python": "3.11.2",
        "os": "Debian GNU/Linux 12 (bookworm)",
        "kernel": "6.1.0-40-amd64",
        "packages": {"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6"},
        "installed": {"tensorflow": "2.21.0", "keras": "3.15.1", "numpy": "2.4.6", "rich": "15.0.0"},
        "lock_sha256": "a" * 64,
        "cpu": {"model": "AMD EPYC", "cores": 2, "memory_gib": 23.5},
        "gpus": [{"index": 0, "name": "NVIDIA H100", "uuid": "GPU-1", "driver": "580.95"}],
        "build": {"cuda_version": "12.5.1", "cudnn_version": "9"},
    }
    for key, value in changes.items():
        *parents, leaf = key.split(".")
        target = fp
        for part in parents:
            target = target[part]
        target[leaf] = value
    return fp


def host_record(name: str, steps: dict[str, Any] | None = None, **fields: Any) -> dict[str, Any]:
    """host.json as ansible/roles/fleet_smoke/templates/host.json.j2 writes it; by default a host that ran
    every step."""
    all_ok = {s: dict(OK) for s in ("reach", "identity", "doctor", "workdir", "smoke", "fetch", "cleanup")}
    return {
        "host": name,
        "address": f"{name}.lab",
        "toolkit": "/opt/keras-workstation/.venv/bin/python",
        "toolkit_found": True,
        "uid": "1000",
        "level": "quick",
        "timeout_s": 1800,
        "smoke_stderr_tail": "",
        "steps": {**all_ok, **(steps or {})},
        **fields,
    }


def stage_host(
    run_dir: Path, name: str, record: dict[str, Any] | None = None, report_data: Any = None, **files: str
) -> Path:
    """hosts/<name>/ with host.json, report.json (`report_data`: a dict, or raw text) and other files."""
    folder = run_dir / "hosts" / name.replace("/", "_")
    folder.mkdir(parents=True)
    (folder / "host.json").write_text(json.dumps(record or host_record(name)))
    if report_data is not None:
        text = report_data if isinstance(report_data, str) else json.dumps(report_data)
        (folder / "report.json").write_text(text)
        (folder / "report.html").write_text("<html></html>")
    for filename, text in files.items():
        (folder / filename.replace("_", ".")).write_text(text)
    return folder


def stage_run(run_dir: Path, hosts: list[str], rc: int = 0) -> Path:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "plan.json").write_text(
        json.dumps({"inventory": "/lab/hosts.yml", "limit": None, "level": "quick", "hosts": hosts})
    )
    (run_dir / "ansible.json").write_text(json.dumps({"rc": rc, "interrupted": None, "seconds": 1.0}))
    return run_dir
