"""`python -m smoke_tests` onto a disk that fills up: exit 4 and one line naming what could not be written,
every check's result and figures on the terminal, and what fits written. It once lost the report with a
traceback (400 KB), and on 4 KB pytest itself stopped, its log unwritable, and every check was lost."""

from __future__ import annotations

import subprocess
import sys

import pytest

from gpu_doctor.exit_codes import EXIT_NO_SPACE
from tests.conftest import REPO
from tests.tmpfs import small_tmpfs

CHECKS = ("environment_variables", "gpu_found")


@pytest.mark.parametrize("size", ["4k", "24k"], ids=["nothing-fits", "the-report-does-not-fit"])
def test_a_full_disk_keeps_every_check_on_the_terminal(size: str) -> None:
    with small_tmpfs(size) as disk:
        proc = subprocess.run(
            [sys.executable, "-m", "smoke_tests", "-k", " or ".join(CHECKS), "--out", str(disk / "run")],
            cwd=REPO, capture_output=True, text=True, timeout=300,
        )  # fmt: skip
        written = sorted(p.name for p in (disk / "run").iterdir() if p.stat().st_size)
    assert proc.returncode == EXIT_NO_SPACE, proc.stdout[-2000:] + proc.stderr[-2000:]
    assert "Traceback" not in proc.stdout + proc.stderr, proc.stderr[-3000:]
    (line,) = [line for line in proc.stderr.splitlines() if "error:" in line]
    assert "out of space" in line and "report.json" in line, line
    assert "report.json" not in written
    for check in CHECKS:
        assert f"system/{check}" in proc.stdout.split("every check and figure of this run")[-1], proc.stdout
