"""The project runs where TensorFlow is not installed, as on the GPU machines (JAX, no TensorFlow): a
second environment from the same lock, without the tensorflow package (tests/conftest.py, shared with the GPU
report's test), runs the quick smoke test on JAX."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.slow


def test_quick_smoke_test_passes_on_jax_without_tensorflow(python_without_tensorflow: Path, tmp_path: Path):
    out = tmp_path / "report"
    proc = subprocess.run(
        [python_without_tensorflow, "-m", "smoke_tests", "--level", "quick", "--out", str(out)],
        cwd=ROOT, capture_output=True, text=True, timeout=1500, check=False,
        env={**os.environ, "KERAS_BACKEND": "jax"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    report = json.loads((out / "report.json").read_text())
    assert report["verdict"] == "PASSED" and report["backend"] == "jax"
    assert report["fingerprint"]["packages"]["tensorflow"] is None
    assert report["fingerprint"]["packages"]["jax"]
    workloads = {c["name"]: c for c in report["checks"] if c["category"] == "workloads"}
    assert len(workloads) == 4 and all(c["status"] == "passed" for c in workloads.values()), workloads
    for name in ("moons", "mnist", "convnet-viz", "transfer"):
        result = json.loads((out / "workloads" / name / "result.json").read_text())
        assert result["backend"] == "jax" and result["fingerprint"]["keras_backend"] == "jax", name
