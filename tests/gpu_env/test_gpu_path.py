"""A GPU path on every GPU the lock can serve, and PTX without a false time-out.

On compute capability 12.x and 10.x, where TensorFlow 2.21's wheels cannot run (gpu_doctor/rules.toml
[[known_broken]]), the smoke test runs its checks and workloads on the lock's JAX and says so; the user's own
KERAS_BACKEND stands. On a GPU that runs the build's PTX (an H100 with TensorFlow 2.21), an untimed warm-up
compiles the kernels into a compute cache that outlives the run, reports its own time, and the check
time-outs start after it. The runner's GPU probe sees a staged machine (tests/gpu_env/staged_runner.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from gpu_doctor.build import gpu_backend
from gpu_doctor.cli import main as doctor
from gpu_doctor.diagnose import diagnose
from smoke_tests import warmup
from tests.conftest import REPO
from tests.gpu_doctor.staging import H100_NVML, FakeCuda, Machine
from tests.gpu_env.staged_runner import MACHINES
from tests.smoke.fake_nvml import FakeNvml

TINY = """
[levels.tiny]
check_timeout_s = 10
suite_timeout_s = 10
workloads = []
workload_args = []
transfer_args = []
repeats = 3
matmul_n = { gpu = 64, cpu = 64 }
matmul_steps = { gpu = 1, cpu = 1 }
h2d_mib = 1
h2d_steps = 1
ladder_images = { gpu = 32, cpu = 32 }
ladder_train_images = 64
ladder_steps_per_execution = { gpu = 1, cpu = 1 }
ladder_rungs = { gpu = 1, cpu = 1 }
"""


@pytest.mark.parametrize(
    ("cc", "requested", "plugin", "expected"),
    [
        ("9.0", None, True, None),  # H100: TensorFlow's PTX runs there
        ("8.9", None, True, None),
        ("12.0", None, True, "jax"),  # RTX 50xx
        ("10.0", None, True, "jax"),  # B200
        ("12.0", "tensorflow", True, "tensorflow"),  # the user's choice stands
        ("12.0", None, False, None),  # no JAX plugin: TensorFlow, and the doctor says why and what to install
    ],
)
def test_the_backend_for_the_gpus(
    tmp_path: Path, cc: str, requested: str | None, plugin: bool, expected
) -> None:
    m = MACHINES["h100"](tmp_path)
    if not plugin:
        m.uninstall("jax-cuda12-plugin")
    backend, why = gpu_backend(requested, m.metadata, [cc])
    assert backend == expected
    assert (why is not None) == (expected == "jax" and requested is None)
    if why:
        assert f"compute capability {cc}" in why and "JAX 0.10.2" in why and "uv.lock" in why


def test_the_doctor_on_an_rtx_5090_with_each_backend(tmp_path: Path, capsys) -> None:
    m = MACHINES["rtx5090"](tmp_path)
    assert doctor(["--lower-only", "--backend", "tensorflow"], boundary=m.boundary()) == 1
    out = " ".join(capsys.readouterr().out.split())
    assert "BROKEN at the framework layer" in out and "KERAS_BACKEND=jax make doctor" in out
    assert doctor(["--lower-only", "--backend", "jax"], boundary=m.boundary()) == 0
    assert "verdict: OK" in capsys.readouterr().out


def _smoke(machine: str, out: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {**os.environ, "SMOKE_SETTINGS": str(out.parent / "settings.toml"), **env}
    full.pop("KERAS_BACKEND", None)
    (out.parent / "settings.toml").write_text((REPO / "smoke_tests/settings.toml").read_text() + TINY)
    return subprocess.run(
        [sys.executable, "-m", "tests.gpu_env.staged_runner", machine, "--level=tiny", "--out", out, *args],
        cwd=REPO, capture_output=True, text=True, timeout=600, env={**full, **env}, check=False,
    )  # fmt: skip


def test_the_smoke_test_runs_on_jax_where_tensorflow_cannot(tmp_path: Path) -> None:
    proc = _smoke("rtx5090", tmp_path / "r", "-k", "environment_variables")
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["backend"] == "jax" and report["verdict"] == "PASSED"
    note = "TensorFlow 2.21.0's wheels cannot run on compute capability 12.0"
    assert note in report["notes"][0] and "run on JAX 0.10.2" in report["notes"][0]
    assert note in proc.stdout.split("SMOKE TEST PASSED")[1]  # in the summary
    kept = _smoke("rtx5090", tmp_path / "k", "-k", "environment_variables", KERAS_BACKEND="tensorflow")
    assert json.loads((tmp_path / "k" / "report.json").read_text())["backend"] == "tensorflow", kept.stdout[
        -2000:
    ]


def test_ptx_targets_are_the_gpus_that_need_the_builds_ptx(tmp_path: Path) -> None:
    h100 = diagnose(Machine.healthy_h100(tmp_path / "h100").boundary(), ask_framework=False).to_dict()
    assert warmup.ptx_targets(h100) == ["sm_90"]
    ada = Machine.healthy_h100(tmp_path / "ada")  # an RTX 4090: native sm_89 code in TensorFlow 2.21's wheels
    ada.nvml = FakeNvml(**H100_NVML, nvmlDeviceGetName="NVIDIA GeForce RTX 4090",
                        nvmlDeviceGetCudaComputeCapability=(8, 9))  # fmt: skip
    ada.cuda = FakeCuda(devices=[("NVIDIA GeForce RTX 4090", (8, 9))])
    assert warmup.ptx_targets(diagnose(ada.boundary(), ask_framework=False).to_dict()) == []


def test_the_compute_cache_outlives_the_run_unless_the_user_chose() -> None:
    env = warmup.cuda_cache_env({"HOME": "/home/ada"})
    assert env == {
        "CUDA_CACHE_PATH": "/home/ada/.cache/keras-workstation/cuda",
        "CUDA_CACHE_MAXSIZE": str(2**32),
    }
    assert (
        warmup.cuda_cache_env({"XDG_CACHE_HOME": "/c", "HOME": "/h"})["CUDA_CACHE_PATH"]
        == "/c/keras-workstation/cuda"
    )
    assert warmup.cuda_cache_env({"CUDA_CACHE_PATH": "/mine", "CUDA_CACHE_MAXSIZE": "1", "HOME": "/h"}) == {}


def test_the_warm_up_is_untimed_and_reports_its_time(tmp_path: Path) -> None:
    """A staged H100 (it runs TensorFlow's compute_90 PTX) and a stand-in warm-up of 12 s; the suite's limit
    is 10 s (and each check's): the checks still pass, since their clocks start after the warm-up."""
    proc = _smoke("h100", tmp_path / "r", "-k", "environment_variables",
                  SMOKE_WARMUP_ENTRY="tests.gpu_env.fake_warmup:sleep", FAKE_WARMUP_S="12")  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    report = json.loads((tmp_path / "r" / "report.json").read_text())
    assert report["verdict"] == "PASSED" and report["warmup"]["targets"] == ["sm_90"]
    assert report["warmup"]["seconds"] >= 12 and report["warmup"]["cache"].endswith("keras-workstation/cuda")
    assert "compiling kernels for sm_90" in proc.stdout and "test hook SMOKE_WARMUP_ENTRY" in proc.stdout
    assert "compiling kernels for sm_90: 1" in proc.stdout.split("SMOKE TEST PASSED")[1]  # "12.x s", summary
    # Negative control: a warm-up that fails is said so, and the checks run all the same.
    failed = _smoke("h100", tmp_path / "f", "-k", "environment_variables",
                    SMOKE_WARMUP_ENTRY="tests.gpu_env.fake_warmup:fail")  # fmt: skip
    assert failed.returncode == 0 and "failed: RuntimeError: CUDA_ERROR_INVALID_PTX" in failed.stdout, (
        failed.stdout
    )
    never = _smoke("h100", tmp_path / "n", "-k", "environment_variables", SMOKE_WARMUP="never")
    assert json.loads((tmp_path / "n" / "report.json").read_text())["warmup"] is None, never.stdout[-2000:]


@pytest.mark.slow
def test_the_real_warm_up_runs(tmp_path: Path) -> None:
    """The real warm-up (the doctor's compute set, a Keras training in float32 and float16) on this CPU."""
    proc = subprocess.run(
        [sys.executable, "-m", "smoke_tests.warmup"], cwd=REPO, capture_output=True, text=True, timeout=600,
        env={**os.environ, "KERAS_BACKEND": "jax"}, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["backend"] == "jax" and result["device"] == "cpu" and result["seconds"] > 0
