"""The workloads, through their CLI, judged by the thresholds of their one data file.

They run in the workload worker (smoke_tests/worker.py: one process that imports the framework once), or,
with `--isolation subprocess`, each in a fresh `python -m workloads` as before.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gpu_doctor.exit_codes import (
    EXIT_BAD_INPUT,
    EXIT_DIVERGED,
    EXIT_INTERRUPTED,
    EXIT_NO_SPACE,
    EXIT_THRESHOLD_FAILED,
)
from smoke_tests import framework_ops, lifeline, timing
from smoke_tests.plugin import CheckRecord, options
from smoke_tests.worker import ENTRY, Outcome, WorkloadWorker

EXIT_MEANING = {
    EXIT_THRESHOLD_FAILED: "a threshold failed",
    EXIT_BAD_INPUT: "bad input",
    EXIT_DIVERGED: "training diverged (NaN)",
    EXIT_NO_SPACE: "out of space",
    EXIT_INTERRUPTED: "interrupted",
}


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """One check per workload of the level the runner chose (--smoke-level)."""
    if "name" in metafunc.fixturenames:
        metafunc.parametrize("name", options(metafunc.config).level.settings["workloads"])


def workload_command(
    name: str, out: Path, level: Mapping[str, Any], seed: int, data: Path | None
) -> list[str]:
    """`python -m workloads ...` for one workload: its CLI arguments are `cmd[3:]`."""
    cmd = [sys.executable, "-m", "workloads", name, *level["workload_args"], "--out", str(out)]
    # The suite's seed: the thresholds are calibrated over seeds 0..9 (benchmarks/results/calibration/).
    cmd += ["--seed", str(seed), "--backend", framework_ops.name()]
    if name == "mnist":
        cmd += ["--stage", "5"]
    if name == "transfer":
        cmd += level["transfer_args"]
    # transfer --base self reads MNIST-format data
    if name in ("mnist", "convnet-viz", "transfer") and data is not None:
        cmd += ["--data", str(data)]
    return cmd


def run_subprocess(cmd: list[str], log: Path, limit: float) -> Outcome:
    """The workload in a fresh interpreter (`--isolation subprocess`): the way before the worker."""
    t0 = time.monotonic()
    with log.open("w") as fh:
        try:
            # Through the lifeline: the workload dies with this check process, however that ends.
            proc = subprocess.run(
                lifeline.command(cmd), stdout=fh, stderr=subprocess.STDOUT, timeout=limit, check=False
            )
        except subprocess.TimeoutExpired:
            return Outcome(None, time.monotonic() - t0, 0.0, f"stopped after {limit:.0f} s")
    code = proc.returncode
    if code < 0:
        return Outcome(None, time.monotonic() - t0, 0.0, f"the process was killed by signal {-code}")
    return Outcome(code, time.monotonic() - t0, 0.0)


def test_workload(
    name: str,
    check: CheckRecord,
    level: Mapping[str, Any],
    report_dir: Path,
    seed: int,
    workload_data: tuple[Path | None, str],
    workload_worker: WorkloadWorker | None,
    framework_gpu: dict[str, Any],
) -> None:
    out = report_dir / "workloads" / name
    data, origin = workload_data
    cmd = workload_command(name, out, level, seed, data)
    check.detail("command", " ".join(cmd[1:]))
    check.detail("isolation", "worker" if workload_worker else "subprocess")
    if workload_worker is not None and workload_worker.entry != ENTRY:
        check.warn(f"test hook --smoke-worker-entry={workload_worker.entry}: not the real workloads")
    if "--data" in cmd:
        check.detail("data", {"path": cmd[cmd.index("--data") + 1], "origin": origin})
    log = report_dir / "workloads" / f"{name}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.unlink(missing_ok=True)
    (out / "result.json").unlink(missing_ok=True)  # a reused --out: never judge an earlier run's result
    # A little under the pytest-timeout so the message names the workload rather than pytest internals.
    limit = max(0.9 * level["check_timeout_s"], level["check_timeout_s"] - 10)
    if workload_worker is not None:
        outcome = workload_worker.run(cmd[3:], log, limit)
    else:
        outcome = run_subprocess(cmd, log, limit)
    result_file = out / "result.json"
    result = json.loads(result_file.read_text()) if result_file.is_file() else None
    for category, seconds in timing.workload_breakdown(
        result, outcome.wall_s, outcome.startup_s, workload_worker is not None
    ).items():
        check.time(category, seconds)
    if outcome.exit is None:
        pytest.fail(f"workload {name}: {outcome.error} (log: {log.name})")
    tail = (log.read_text(errors="replace").strip().splitlines() if log.is_file() else [])[-1:] or [""]
    if outcome.exit == EXIT_BAD_INPUT and "invalid choice" in tail[0]:
        pytest.fail(f"workload {name!r} is not available in this version of `workloads`")
    assert result is not None, f"workload {name} wrote no result.json (exit {outcome.exit}: {tail[0][:200]})"
    code = outcome.exit
    check.detail("dataset", result.get("dataset"))
    on_gpu = "GPU" in str(result.get("device", "")).upper()
    check.detail("ran_on", framework_gpu if on_gpu and framework_gpu else "cpu")
    check.detail("regime", (result.get("hyperparameters") or {}).get("regime"))
    check.detail("thresholds", result.get("thresholds"))
    higher = ("transfer_margin", "pointing_game")
    for metric, value in (result.get("metrics") or {}).items():
        if isinstance(value, int | float) and not isinstance(value, bool):  # a flag is not a figure
            check.figure(metric, value, "", better="higher" if "acc" in metric or metric in higher else None)
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
        pytest.fail(f"workload {name}: nothing judged: workloads/harness/thresholds.toml has no "
                    f"thresholds for it on dataset {dataset!r} at this level")  # fmt: skip
    if code != 0 or status != "passed":
        meaning = EXIT_MEANING.get(code, "error")
        why = f"thresholds failed: {', '.join(failed)}" if failed else f"log: {tail[0][:150]}"
        pytest.fail(f"workload {name}: exit {code} ({meaning}), status {status}; {why}")
