"""Shared test helpers: prerequisites that fail in CI (`IN_CI`) and skip, with a reason, elsewhere."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import settings

from workloads.data.images import FASHION_MNIST_DIR as FASHION_MNIST  # Debian's dataset-fashion-mnist

REPO = Path(__file__).resolve().parent.parent
# The one reading of CI: set to anything but "", "0" or "false" (any case). CI services set CI=true; some set
# CI=1; CI=0 / CI=false is how a developer turns it off explicitly.
CI_OFF = ("", "0", "false")


def in_ci(value: str | None) -> bool:
    """Whether a value of the CI environment variable means "running in CI"."""
    return (value or "").strip().lower() not in CI_OFF


IN_CI = in_ci(os.environ.get("CI"))

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
        pytest.fail(message + " (CI is set: prerequisites must be installed by .ci/run)")
    pytest.skip(message)


def require_tool(tool: str) -> str:
    """The path of a command on PATH; `require`s it (fails in CI, skips elsewhere) when it is missing."""
    path = shutil.which(tool)
    require(path is not None, f"{tool} is not installed (.ci/run installs it)")
    assert path is not None
    return path


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


@pytest.fixture(scope="session")
def python_without_tensorflow(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An environment from the lock without TensorFlow (JAX only), as on the lent GPU machines: made once."""
    uv = shutil.which("uv") or str(REPO / ".cache/uv/bin/uv")
    require(Path(uv).is_file(), "uv (make setup bootstraps it)")
    venv = tmp_path_factory.mktemp("no-tensorflow") / "venv"
    proc = subprocess.run(
        [uv, "sync", "--frozen", "--no-dev", "--extra", "jax", "--no-install-package", "tensorflow",
         "--python", "/usr/bin/python3"],
        cwd=REPO, capture_output=True, text=True, timeout=900, check=False,
        env={**os.environ, "UV_PROJECT_ENVIRONMENT": str(venv), "UV_PYTHON_DOWNLOADS": "never"},
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    python = venv / "bin" / "python"
    probe = subprocess.run([python, "-c", "import tensorflow"], capture_output=True, text=True, check=False)
    assert "No module named 'tensorflow'" in probe.stderr, "the environment must not have TensorFlow"
    return python
