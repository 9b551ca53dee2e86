"""A run that did not finish is never a pass: the check process dying (an exit from inside a check, an abort
like XLA's LLVM fatal error, SIGKILL) or leaving checks unrun gives SMOKE TEST FAILED, exit 1, and a report
(JSON, HTML, terminal) that names the check that was running, its last words and the checks that never ran.
Before, `os._exit(1)` in a check printed SMOKE TEST PASSED and exited 0 (runner.py's _wait took exit code 1
for "a check failed" and the report judged only the checks that finished)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.conftest import REPO

# The system checks only: gpu_doctor's layers, no framework import, a few seconds each run.
SELECT = "system"
LLVM = (
    "LLVM ERROR: PTX version 8.5 does not support target 'sm_120' (or 'sm_120a'). Minimum required PTX "
    "version is 8.7"
)


def _run(
    tmp_path: Path, how: str, says: str, code: str = "1", die_in: str = "test_layer[device_nodes]"
) -> tuple:
    out = tmp_path / "report"
    env = {**os.environ, "PYTEST_ADDOPTS": "-p tests.smoke.dying_check", "DIE_IN": die_in, "DIE_HOW": how,
           "DIE_SAYS": says, "DIE_CODE": code}  # fmt: skip
    proc = subprocess.run([sys.executable, "-m", "smoke_tests", "-k", SELECT, "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    return proc, json.loads((out / "report.json").read_text()), (out / "report.html").read_text()


@pytest.mark.parametrize(
    ("how", "code", "ended"),
    [("exit", "1", "exited (code 1)"), ("exit", "0", "exited (code 0)"),
     ("abort", "1", "was killed by SIGABRT"), ("kill", "1", "was killed by SIGKILL")],
    ids=["os-exit-1", "os-exit-0", "abort-like-llvm", "sigkill"],
)  # fmt: skip
def test_a_dying_check_process_fails_the_run_with_its_last_words(
    tmp_path: Path, how: str, code: str, ended: str
) -> None:
    proc, report, page = _run(tmp_path, how, LLVM, code)
    context = proc.stdout[-3000:] + proc.stderr[-2000:]
    assert proc.returncode == 1 and "SMOKE TEST FAILED" in proc.stdout, context
    assert report["verdict"] == "FAILED" and "Traceback" not in proc.stderr, context
    state = report["incomplete"]
    assert state["running"]["name"] == "layer[device_nodes]" and ended in state["how"], state
    assert LLVM in state["last_words"], state
    assert state["not_run"] and all("device_nodes" not in c for c in state["not_run"]), state
    checks = {c["name"]: c for c in report["checks"]}
    assert (
        checks["layer[device_nodes]"]["status"] == "error"
        and LLVM in checks["layer[device_nodes]"]["message"]
    )
    assert checks["suite"]["status"] == "error" and "did not run" in checks["suite"]["message"]
    assert "layer[kernel_module]" in checks  # what finished before is kept
    assert "The run did not finish" in page and "LLVM ERROR: PTX version 8.5" in page
    flat = " ".join(proc.stdout.split())
    assert (
        "the run did not finish: the check process" in flat and "its last words" in flat and LLVM[:60] in flat
    )


def test_a_process_that_dies_in_its_last_check_fails_too(tmp_path: Path) -> None:
    proc, report, _ = _run(tmp_path, "exit", "giving up", "0", die_in="test_environment_variables")
    assert proc.returncode == 1 and report["verdict"] == "FAILED", proc.stdout[-2000:]
    assert report["incomplete"]["running"]["name"] == "environment_variables"
    assert report["incomplete"]["not_run"] == [] and report["incomplete"]["last_words"][-1] == "giving up"


def test_a_run_that_finishes_has_no_incomplete_record(tmp_path: Path) -> None:
    """The negative control: the same selection without a dying check."""
    proc, report, page = _run(tmp_path, "exit", "", die_in="no such check")
    assert "incomplete" not in report and "suite" not in {c["id"] for c in report["checks"]}, proc.stdout[
        -2000:
    ]
    assert report["verdict"] in ("PASSED", "FAILED") and "The run did not finish" not in page


def test_a_gpu_that_does_not_answer_nvml_still_gets_a_report_within_the_time_limit(tmp_path: Path) -> None:
    """NVML's queries of GPU 0 block (tests/smoke/hung_nvml, first on PYTHONPATH) on a staged machine with an
    NVIDIA GPU, its driver and device nodes (the GPU_DOCTOR_ROOT test hook): before, the runner's NVML
    calls had no time limit and the run hung with no report. Now the NVML layer names the GPU after
    rules.toml's 10 s, in the runner and in the check process, and the report is written."""
    from gpu_doctor import rules
    from tests.gpu_doctor.staging import H100_PCI_ID, Machine

    m = Machine(tmp_path / "root")
    m.pci_device("0000:01:00.0", "0x10de", "0x030200", H100_PCI_ID, "nvidia")
    m.load_module()
    m.device_nodes()
    out = tmp_path / "report"
    hung = str(Path(__file__).resolve().with_name("hung_nvml"))
    path = os.pathsep.join(filter(None, [hung, str(REPO), os.environ.get("PYTHONPATH")]))
    env = {**os.environ, "GPU_DOCTOR_ROOT": str(m.root), "PYTHONPATH": path}
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "smoke_tests", "-k", "system", "--out", str(out)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=300, check=False)  # fmt: skip
    took = time.monotonic() - started
    limit = rules.timeouts()["nvml_gpu_s"]
    said = f"GPU 0 did not answer NVML within {limit:g} s"
    assert proc.returncode == 1 and "SMOKE TEST FAILED" in proc.stdout, (
        proc.stdout[-3000:] + proc.stderr[-2000:]
    )
    report = json.loads((out / "report.json").read_text())
    nvml = next(c for c in report["checks"] if c["name"] == "layer[nvml]")
    assert (
        nvml["status"] == "failed" and said in nvml["message"] and "nvidia-bug-report.sh" in nvml["message"]
    )
    assert said in " ".join(proc.stdout.split())  # the runner's own probe said it before the checks ran
    assert took < 4 * limit + 60, f"{took:.0f} s"  # two probes of 10 s each, then the report: not 45 s a call
