"""`IMAGE smoke-test` runs the smoke tests inside the container and leaves the report in the mount."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from .conftest import HOST_UID, host_workdir

pytestmark = pytest.mark.image


def test_smoke_test_command_writes_its_report_into_the_mount(
    containers, tmp_path_factory, fashion_mnist: Path
) -> None:
    # Real Fashion-MNIST, mounted at the same path: where the workloads look by default.
    work = host_workdir(tmp_path_factory, "smoke")
    result = containers.run_to_end(
        "--user", f"{HOST_UID}:{HOST_UID}", "-v", f"{work}:/work",
        "-v", f"{fashion_mnist}:{fashion_mnist}:ro",
        command=["smoke-test"], timeout=1200,
    )  # fmt: skip
    assert result.returncode == 0, f"{result.stdout[-3000:]}\n{result.stderr[-3000:]}"
    runs = sorted((work / "reports").glob("smoke-*"))
    assert len(runs) == 1, list((work / "reports").iterdir())
    report = json.loads((runs[0] / "report.json").read_text())
    assert report["verdict"] == "PASSED", report["verdict"]
    reports = [runs[0] / "report.json", runs[0] / "report.html"]
    assert all(path.stat().st_uid == HOST_UID for path in [runs[0], *reports])


def test_smoke_test_without_a_writable_work_is_a_clear_error(containers, tmp_path_factory) -> None:
    work = tmp_path_factory.mktemp("root-owned-smoke")  # root's, not writable by the host user
    result = containers.run_to_end("--user", f"{HOST_UID}:{HOST_UID}", "-v", f"{work}:/work",
                                   command=["smoke-test"])  # fmt: skip
    assert result.returncode == 2, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert errors and "mount a directory you own at /work" in errors[0], result.stderr
