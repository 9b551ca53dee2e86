"""Negative controls: every workload's check fails on a broken run (`--negative-control`).

Each run is the quick run a smoke test makes, offline (the digits fallback: data every machine has), with
what makes it broken: labels shuffled (moons, mnist, convnet-viz), or for transfer the pretrained base
re-initialized before the transfer. The calibration (benchmarks/results/calibration/calibration.md) shows the
same on every dataset; these tests keep it true in CI.
"""

from __future__ import annotations

import json

import pytest

from tests.conftest import run_workloads

# workload argv, and the metric whose threshold a broken run must fail
CASES = {
    "moons": (("moons",), "test_accuracy"),
    "mnist": (("mnist", "--stage", "5"), "test_accuracy"),
    "convnet-viz": (("convnet-viz",), "test_accuracy"),
    "transfer": (("transfer", "--base", "self"), "pretrain_accuracy"),
}


@pytest.mark.slow
@pytest.mark.parametrize("workload", CASES)
def test_a_broken_run_fails_its_check(workload, tmp_path):
    argv, metric = CASES[workload]
    out = tmp_path / "run"
    proc = run_workloads(
        *argv, "--quick", "--seed", "0", "--no-download", "--negative-control", "--out", str(out),
        env={"KERAS_HOME": str(tmp_path / "keras")},
    )  # fmt: skip
    assert proc.returncode == 1, f"exit {proc.returncode}\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    result = json.loads((out / "result.json").read_text())
    assert result["status"] == "failed"
    assert result["negative_control"] is True
    verdict = result["thresholds"][metric]
    assert verdict["passed"] is False, verdict
