"""`make gpu-report` (benchmarks/gpu_report.py), known to work before a GPU arrives: in an environment
without TensorFlow (as on the lent GPU machines), at small levels that fit CI, it writes the doctor, both
smoke-test levels on JAX, the fingerprint and the summary into one folder; a run cut by the budget is
stopped, not passed."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from benchmarks import gpu_report

ROOT = Path(__file__).resolve().parents[2]
SMALL = """
check_timeout_s = 300
suite_timeout_s = 600
workloads = WORKLOADS
workload_args = ["--quick"]
transfer_args = []
repeats = 3
matmul_n = { gpu = 1024, cpu = 128 }
matmul_steps = { gpu = 10, cpu = 2 }
h2d_mib = 4
h2d_steps = 2
ladder_images = { gpu = 256, cpu = 64 }
ladder_train_images = 256
ladder_steps_per_execution = { gpu = 2, cpu = 2 }
ladder_rungs = { gpu = 2, cpu = 1 }
"""


def _small_settings(path: Path) -> Path:
    """smoke_tests/settings.toml with its quick and full levels made small (the report's own levels)."""
    text = (ROOT / "smoke_tests" / "settings.toml").read_text()
    text = re.sub(r"\[levels\.quick\].*", "", text, flags=re.DOTALL)
    quick = SMALL.replace("WORKLOADS", '["moons"]')  # its quick thresholds are calibrated
    full = SMALL.replace("WORKLOADS", "[]")
    path.write_text(f"{text}[levels.quick]{quick}\n[levels.full]{full}")
    return path


@pytest.mark.slow
def test_the_report_on_this_cpu_without_tensorflow(python_without_tensorflow: Path, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if k != "KERAS_BACKEND"}
    env["SMOKE_SETTINGS"] = str(_small_settings(tmp_path / "settings.toml"))
    proc = subprocess.run(
        [python_without_tensorflow, "-m", "benchmarks.gpu_report", "--out", tmp_path / "r", "--budget-s=900"],
        cwd=ROOT, capture_output=True, text=True, timeout=1200, env=env, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    folder = tmp_path / "r" / "cpu"  # no GPU here: the folder says so
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["backends"] == ["jax"]  # TensorFlow is not installed
    assert [r["run"] for r in summary["runs"]] == ["jax-quick", "jax-full"] and summary["not_run"] == []
    assert all(r["verdict"] == "PASSED" and r["backend"] == "jax" for r in summary["runs"]), summary["runs"]
    assert "no NVIDIA GPU found" in (folder / "doctor-jax.txt").read_text()
    assert json.loads((folder / "doctor-jax.json").read_text())["backend"] == "jax"
    fingerprint = json.loads((folder / "fingerprint.json").read_text())
    assert fingerprint["packages"]["tensorflow"] is None and fingerprint["packages"]["jax"]
    for run in ("jax-quick", "jax-full"):
        report = json.loads((folder / run / "report.json").read_text())
        assert report["verdict"] == "PASSED" and (folder / run / "report.html").is_file()
    quick = json.loads((folder / "jax-quick" / "report.json").read_text())
    assert any(c["name"] == "workload[moons]" and c["status"] == "passed" for c in quick["checks"])
    assert "| smoke test jax-full | PASSED |" in (folder / "summary.md").read_text()


def test_a_run_past_the_budget_is_stopped_and_said_so(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(gpu_report, "STOP_GRACE_S", 5)
    started = __import__("time").monotonic()
    run = gpu_report._run([sys.executable, "-c", "import time; time.sleep(60)"], dict(os.environ), 1)
    assert run["stopped_by_budget"] and run["code"] == -15 and __import__("time").monotonic() - started < 20
    summary = {"gpu": "cpu", "budget_s": 1, "seconds": 1, "doctor": {}, "not_run": ["jax-full: 3 s left"],
               "runs": [{"run": "jax-quick", "verdict": "INTERRUPTED", "stopped_by_budget": True,
                         "seconds": 1, "headlines": {}}]}  # fmt: skip
    text = gpu_report.summary_markdown(summary, {"gpus": {"error": "no GPU"}})
    assert (
        "INTERRUPTED (stopped at the budget: not a pass)" in text
        and "| jax-full: 3 s left | not run |" in text
    )


def test_the_folder_is_named_after_the_gpu() -> None:
    assert gpu_report.gpu_folder_name({"gpus": [{"name": "NVIDIA H200"}]}) == "nvidia-h200"
    assert (
        gpu_report.gpu_folder_name({"gpus": [{"name": "NVIDIA H100 80GB HBM3"}]}) == "nvidia-h100-80gb-hbm3"
    )
    assert gpu_report.gpu_folder_name({"gpus": {"error": "NVML: driver not loaded"}}) == "cpu"
