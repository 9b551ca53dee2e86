"""`python -m smoke_tests` on bad input: a clear one-line error and exit 2, never a traceback."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [sys.executable, "-m", "smoke_tests", *args]
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120, check=False)


@pytest.mark.parametrize(
    ("make_args", "words"),
    [
        (lambda tmp: ["--level", "medium"], "unknown level 'medium'"),
        (lambda tmp: ["--baseline", str(tmp / "missing.json")], "cannot read it"),
        (lambda tmp: ["--baseline", str(tmp / "bad.json")], "not valid JSON"),
        (lambda tmp: ["--baseline", str(tmp / "other.json")], "not a smoke-test report.json"),
        (lambda tmp: ["--data", str(tmp / "nowhere")], "no such folder"),
        (lambda tmp: ["--out", "/proc/forbidden"], "cannot write there"),
    ],
)
def test_bad_input_exits_2_with_one_line(tmp_path: Path, make_args: Any, words: str) -> None:
    (tmp_path / "bad.json").write_text("{not json")
    (tmp_path / "other.json").write_text('{"some": "thing"}')
    proc = _run(*make_args(tmp_path))
    assert proc.returncode == 2
    assert proc.stderr.count("\n") == 1 and words in proc.stderr and "Traceback" not in proc.stderr


def test_a_probe_that_raises_never_crashes_the_runner(monkeypatch: pytest.MonkeyPatch) -> None:
    from smoke_tests import runner

    def lost(**_: Any) -> None:
        raise RuntimeError("GPU is lost")  # what a binding could raise mid-probe

    monkeypatch.setattr(runner, "diagnose", lost)
    found = runner.probe_gpu()
    assert found.gpu_found and found.first_broken is not None
    assert "GPU is lost" in found.first_broken.cause and not found.nvml["available"]
    assert "BROKEN" in runner._gpu_note(found)
