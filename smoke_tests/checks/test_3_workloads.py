"""The workloads, through their CLI in subprocesses, judged by the thresholds of their one data file."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from smoke_tests import backend
from smoke_tests.plugin import CheckRecord
from smoke_tests.speed import level_settings, settings

WORKLOADS = level_settings(os.environ.get("SMOKE_LEVEL", "quick"))["workloads"]
EXIT_MEANING = {1: "a threshold failed", 2: "bad input", 3: "training diverged (NaN)", 130: "interrupted"}


def data_dir() -> tuple[Path | None, str]:
    """MNIST data for the workloads: the user's ($SMOKE_DATA), the settings' default, or the workloads' chain."""
    from workloads.data import KNOWN_DATASETS

    if os.environ.get("SMOKE_DATA"):
        return Path(os.environ["SMOKE_DATA"]), "configured ($SMOKE_DATA / --data)"
    default = settings()["data"]["default"]
    installed = KNOWN_DATASETS.get(default, {}).get("debian_path")
    if installed and Path(installed).is_dir():
        return Path(installed), f"settings [data] default: {default} (Debian's package)"
    return None, "none installed: the workloads' own chain (Keras's MNIST, else the digits fallback)"


def workload_command(name: str, out: Path, level: dict[str, Any], seed: int) -> list[str]:
    cmd = [sys.executable, "-m", "workloads", name, *level["workload_args"], "--out", str(out)]
    # The suite's seed: the thresholds are calibrated over seeds 0..9 (benchmarks/results/calibration/).
    cmd += ["--seed", str(seed), "--backend", backend.name()]
    if name == "mnist":
        cmd += ["--stage", "5"]
    if name == "transfer":
        cmd += level["transfer_args"]
    if name in ("mnist", "convnet-viz", "transfer"):  # transfer --base self reads MNIST-format data
        data, _ = data_dir()
        if data is not None:
            cmd += ["--data", str(data)]
    return cmd


@pytest.mark.parametrize("name", WORKLOADS)
def test_workload(name: str, check: CheckRecord, level: dict[str, Any], report_dir: Path, seed: int) -> None:
    out = report_dir / "workloads" / name
    cmd = workload_command(name, out, level, seed)
    check.detail("command", " ".join(cmd[1:]))
    if "--data" in cmd:
        check.detail("data", {"path": cmd[cmd.index("--data") + 1], "origin": data_dir()[1]})
    log = report_dir / "workloads" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    # A little under the pytest-timeout so the message names the workload rather than pytest internals.
    limit = max(30, level["check_timeout_s"] - 10)
    with log.open("w") as fh:
        try:
            proc = subprocess.run(cmd, stdout=fh, stderr=subprocess.STDOUT, timeout=limit, check=False)
        except subprocess.TimeoutExpired:
            pytest.fail(f"workload {name} did not finish within {limit} s (log: {log.name})")
    tail = log.read_text(errors="replace").strip().splitlines()[-1:] or [""]
    if proc.returncode == 2 and "invalid choice" in tail[0]:
        pytest.fail(f"workload {name!r} is not available in this version of `workloads`")
    result_file = out / "result.json"
    assert result_file.is_file(), (
        f"workload {name} wrote no result.json (exit {proc.returncode}: {tail[0][:200]})"
    )
    result = json.loads(result_file.read_text())
    check.detail("dataset", result.get("dataset"))
    check.detail("thresholds", result.get("thresholds"))
    for metric, value in (result.get("metrics") or {}).items():
        if isinstance(value, int | float):
            check.figure(metric, value, "", better="higher" if "acc" in metric else None)
    timings = result.get("timings") or {}
    if isinstance(timings.get("samples_per_s"), int | float):
        check.figure("samples_per_s", timings["samples_per_s"], "samples/s", better="higher")
    if isinstance(timings.get("total_s"), int | float):
        check.figure("total_s", timings["total_s"], "s")
    for plot in result.get("plots") or []:
        if (out / plot).is_file():
            check.plot(out / plot)
    failed = [
        f"{k} {t.get('actual')} (needs {t.get('op')} {t.get('value')})"
        for k, t in (result.get("thresholds") or {}).items()
        if not t.get("passed")
    ]
    status, dataset = result.get("status"), (result.get("dataset") or {}).get("name")
    if status == "unchecked":
        pytest.fail(f"workload {name}: nothing judged: workloads/thresholds.toml has no thresholds for it on "
                    f"dataset {dataset!r} at this level")  # fmt: skip
    if proc.returncode != 0 or status != "passed":
        meaning = EXIT_MEANING.get(proc.returncode, "error")
        why = f"thresholds failed: {', '.join(failed)}" if failed else f"log: {tail[0][:150]}"
        pytest.fail(f"workload {name}: exit {proc.returncode} ({meaning}), status {status}; {why}")
