"""The pytest plugin: results per check, a hanging check times out with a message, the others still run,
and a throttled measurement is recorded as invalid."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

CHECKS = """
import time
import pytest
from smoke_tests.speed import InvalidMeasurement

def test_hangs(check):
    time.sleep(60)

def test_fails(check):
    check.figure("speed", 1.0, "x", better="higher")
    assert 1 == 2, "one is not two"

def test_throttled(check):
    raise InvalidMeasurement("matmul: invalid, the GPU throttled (hw_slowdown)")

def test_passes(check):
    check.figure("speed", 3.5, "TFLOP/s", better="higher")
    check.warn("a warning")

def test_skips(check):
    pytest.skip("n/a: no GPU")
"""


def test_results_timeout_and_invalid(tmp_path: Path) -> None:
    (tmp_path / "test_9_demo.py").write_text(CHECKS)
    results = tmp_path / "results.jsonl"
    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", str(tmp_path / "test_9_demo.py"), "-p", "smoke_tests.plugin",
         "-p", "no:cacheprovider", "--rootdir", str(tmp_path), "-o", "addopts=", "--timeout=2", "-q",
         f"--smoke-results={results}", f"--smoke-out={tmp_path}"],
        capture_output=True, text=True, env=env, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode == 1, proc.stdout[-2000:]
    lines = {r["name"]: r for r in map(json.loads, results.read_text().splitlines())}
    assert lines["hangs"]["status"] == "failed"
    assert lines["hangs"]["message"].startswith("the check hung and was stopped after 2.0s")
    assert lines["fails"]["status"] == "failed" and "one is not two" in lines["fails"]["message"]
    assert lines["fails"]["figures"]["speed"]["value"] == 1.0  # figures survive a failure
    assert lines["throttled"]["status"] == "invalid" and "hw_slowdown" in lines["throttled"]["message"]
    assert lines["passes"]["status"] == "passed" and lines["passes"]["warnings"] == ["a warning"]
    assert lines["skips"]["status"] == "skipped" and lines["skips"]["message"] == "n/a: no GPU"
    assert {r["category"] for r in lines.values()} == {"demo"}
