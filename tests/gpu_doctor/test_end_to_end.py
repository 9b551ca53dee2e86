"""End to end, in subprocesses: `python -m smoke_tests` and `python -m smoke_tests doctor` on a staged PCI
tree (the documented test hook GPU_DOCTOR_ROOT) with an NVIDIA GPU on the bus and no driver must FAIL and
name the driver; on this machine's real tree the doctor finds no NVIDIA GPU and exits 0; bad input exits 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.gpu_doctor.staging import H100_PCI_ID, Machine

ROOT = Path(__file__).resolve().parents[2]


def _gpu_without_driver(root: Path) -> Path:
    m = Machine(root)
    m.pci_device("0000:01:00.0", "0x10de", "0x030200", H100_PCI_ID, None)  # on the bus, no driver bound
    m.pci_device("0000:01:00.1", "0x10de", "0x040300", "22a3", "snd_hda_intel")  # its audio function
    return root


def _run(
    *args: str, env: dict[str, str] | None = None, timeout: int = 600
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", *args],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def test_doctor_names_the_missing_driver(tmp_path: Path) -> None:
    staged = _gpu_without_driver(tmp_path / "root")
    proc = _run("smoke_tests", "doctor", env={"GPU_DOCTOR_ROOT": str(staged)})
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "verdict: BROKEN at the kernel module layer" in proc.stdout
    assert "no NVIDIA driver is installed" in proc.stdout and "make provision" in proc.stdout
    assert "staged root" in proc.stdout  # the test hook always says so


def test_smoke_test_fails_naming_the_driver(tmp_path: Path) -> None:
    staged = _gpu_without_driver(tmp_path / "root")
    out = tmp_path / "report"
    proc = _run("smoke_tests", "-k", "system", "--out", str(out), env={"GPU_DOCTOR_ROOT": str(staged)})
    assert proc.returncode == 1, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert "SMOKE TEST FAILED" in proc.stdout and "no NVIDIA GPU found" not in proc.stdout
    assert "BROKEN at the kernel module layer: no NVIDIA driver is installed" in proc.stdout
    report = json.loads((out / "report.json").read_text())
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["gpu_found"]["status"] == "passed"
    assert checks["layer[kernel_module]"]["status"] == "failed"
    assert "no NVIDIA driver is installed" in checks["layer[kernel_module]"]["message"]
    assert report["diagnosis"]["first_broken"] == "kernel_module" and report["diagnosis"]["staged_root"]
    assert 'id="diagnosis"' in (out / "report.html").read_text()


def test_doctor_on_this_machine_is_fast_and_says_why_there_is_no_gpu() -> None:
    if Path("/dev/nvidiactl").exists() or Path("/dev/dxg").exists():
        pytest.skip("this machine has an NVIDIA GPU: the no-GPU answer can't be checked here")
    proc = _run("smoke_tests", "doctor", timeout=60)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "verdict: no NVIDIA GPU found" in proc.stdout and "vendor 0x10de" in proc.stdout
    assert "Traceback" not in proc.stderr
    # Saying so needs no framework: the lower layers are standard library + nvidia-ml-py.
    code = (
        "import sys; from gpu_doctor.cli import main; main([]); print(sorted(m for m in ('tensorflow', "
        "'jax', 'torch', 'numpy') if m in sys.modules))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=False)
    assert proc.stdout.strip().splitlines()[-1] == "[]", proc.stdout + proc.stderr


def test_doctor_bad_input_is_one_line_and_exit_2() -> None:
    for args, env in (
        (("--backend", "mxnet"), {}),
        ((), {"KERAS_BACKEND": "mxnet"}),
        (("--frobnicate",), {}),
    ):
        proc = _run("smoke_tests", "doctor", *args, env=env, timeout=60)
        assert proc.returncode == 2, (args, proc.stdout, proc.stderr)
        assert proc.stderr.count("\n") == 1 and "error" in proc.stderr and "Traceback" not in proc.stderr
