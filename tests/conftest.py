"""Shared test helpers: prerequisites that fail in CI (CI=true) and skip, with a reason, elsewhere."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

REPO = Path(__file__).resolve().parent.parent
FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")

# Property tests (hypothesis): no example database in the checkout, no per-example deadline (the machine is
# shared); CI explores the same examples every run, so a failure there can be reproduced.
settings.register_profile("project", database=None, deadline=None, derandomize=IN_CI, print_blob=True)
settings.load_profile("project")


def require(condition: bool, what: str) -> None:
    """A missing prerequisite fails the test in CI and skips it (saying why) on a developer's machine."""
    if condition:
        return
    message = f"missing prerequisite: {what}"
    if IN_CI:
        pytest.fail(message + " (CI=true: prerequisites must be installed by .ci/run)")
    pytest.skip(message)


@pytest.fixture(scope="session")
def fashion_mnist() -> Path:
    """Debian's real Fashion-MNIST (apt-get install dataset-fashion-mnist)."""
    require(
        (FASHION_MNIST / "t10k-labels-idx1-ubyte.gz").is_file(),
        f"Fashion-MNIST in {FASHION_MNIST} (apt-get install dataset-fashion-mnist)",
    )
    return FASHION_MNIST


def run_workloads(
    *args: str, backend: str = "tensorflow", timeout: float = 600, env: dict | None = None
) -> subprocess.CompletedProcess:
    """`python -m workloads ARGS` in a subprocess (each backend needs a fresh interpreter)."""
    full_env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3", **(env or {})}
    return subprocess.run(
        [sys.executable, "-m", "workloads", *args],
        cwd=REPO,
        env=full_env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )
