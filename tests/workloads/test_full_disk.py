"""A full disk during a run: its own exit code (4) and one line saying where, the run's figures printed to the
terminal, and what fits written (result.json before a plot that does not fit). It once ended with exit 1 (a
threshold failed), an ENOSPC traceback and no result.json."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from gpu_doctor.exit_codes import EXIT_BAD_INPUT, EXIT_NO_SPACE
from tests.conftest import REPO, run_workloads
from tests.tmpfs import fill, small_tmpfs
from workloads.errors import NoSpaceError
from workloads.harness.run import RunContext, execute


def test_a_plot_that_does_not_fit_leaves_result_json_and_the_figures(tmp_path) -> None:
    """64 KB: the first plot (about 130 KB) does not fit; result.json (about 14 KB) does, once the
    half-written plot is gone."""
    with small_tmpfs("64k") as disk:
        proc = run_workloads("moons", "--out", str(disk / "run"))
        result = json.loads((disk / "run" / "result.json").read_text())
    assert proc.returncode == EXIT_NO_SPACE, proc.stderr[-2000:]
    (line,) = one_error_line(proc.stderr)
    assert "out of space" in line and "decision_boundary.png" in line and "result.json written" in line
    assert "test_accuracy" in proc.stdout, "the run's figures reach the terminal"
    assert result["status"] == "failed" and "out of space" in result["message"]
    assert result["metrics"]["test_accuracy"] >= 0.9, "what the run computed is kept"


def test_a_result_json_that_does_not_fit_is_said_and_its_figures_printed(capsys) -> None:
    """No space at all when result.json is written: NoSpaceError after the summary, which has the figures."""

    def body(ctx: RunContext) -> None:
        ctx.record.metrics = {"test_accuracy": 0.9876, "test_loss": 0.0123}

    with small_tmpfs("16k") as disk:
        (disk / "run").mkdir()
        fill(disk)
        ctx = RunContext(workload="moons", out_dir=disk / "run", backend="tensorflow")
        with pytest.raises(NoSpaceError, match=r"result\.json NOT written") as raised:
            execute(ctx, body)
        assert not (disk / "run" / "result.json").exists()
        assert not list((disk / "run").iterdir()), "no temporary file is left"
    shown = capsys.readouterr().out
    assert "0.9876" in shown and "NOT written" in shown, shown
    assert raised.value.exit_code == EXIT_NO_SPACE and "\n" not in str(raised.value)


def test_an_os_error_outside_a_run_is_one_line() -> None:
    """The CLI catches what no part of it foresaw: here a bundle folder that cannot be created."""
    bundle = "/proc/kw-bundle"
    cmd = [sys.executable, "-m", "workloads", "assets", "fetch", "--bundle", bundle, "--only", "mnist"]
    proc = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=120)
    assert proc.returncode == EXIT_BAD_INPUT, proc.stderr[-2000:]
    (line,) = one_error_line(proc.stderr)
    assert "/proc/kw-bundle" in line


def one_error_line(stderr: str) -> list[str]:
    """The error lines of a run (the framework's own log lines are not its errors); no traceback."""
    assert "Traceback" not in stderr, stderr[-3000:]
    return [line for line in stderr.splitlines() if "error:" in line]
