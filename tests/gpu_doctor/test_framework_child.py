"""The framework runs in the doctor's child process (gpu_doctor.child): whatever it does there (abort, exit,
hang, wrong numbers) becomes a cause in its own words, and the doctor always prints its verdict. Before, the
compute probe ran inside the doctor with stderr redirected to an unlinked file: a framework that aborted took
`make doctor` down with it, silently, exit 1. Staged H100s with the stand-in TensorFlow; the real child."""

from __future__ import annotations

from pathlib import Path

import pytest

from gpu_doctor.cli import main
from tests.gpu_doctor.staging import Machine

LLVM = "LLVM ERROR: PTX version 8.5 does not support target 'sm_90a'. Minimum required PTX version is 8.7"


def _doctor(m: Machine, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main([], boundary=m.boundary())
    return code, " ".join(capsys.readouterr().out.split())


@pytest.mark.parametrize(
    ("spec", "layer", "words"),
    [
        (
            {"abort": LLVM, "at": "xla"},
            "compute",
            "was killed by SIGABRT while it computed on GPU 0 (0000:01:00.0",
        ),
        ({"exit": 3}, "compute", "exited with 3 before it reported"),
        (
            {"fail": "INTERNAL: CUDA_ERROR_LAUNCH_FAILED: unspecified launch failure"},
            "compute",
            "LAUNCH_FAILED",
        ),
        (
            {"wrong": True},
            "compute",
            "GPU 0 (0000:01:00.0, GPU-8932f937-d72c-4106-c12f-20bd9faed9f0)'s results",
        ),
    ],
    ids=["xla-abort", "exit", "exception", "wrong-numbers"],
)
def test_what_the_framework_does_in_its_process_is_a_cause(
    tmp_path: Path, capsys, spec: dict, layer: str, words: str
) -> None:
    m = Machine.healthy_h100(tmp_path)
    m.framework("tensorflow", gpus=["/physical_device:GPU:0"], **spec)
    code, out = _doctor(m, capsys)
    assert code == 1 and f"verdict: BROKEN at the {layer} layer" in out and words in out, out
    if "abort" in spec:
        assert "It said: LLVM ERROR: PTX version 8.5 does not support target 'sm_90a'" in out
        assert "XLA compiler cannot target this GPU" in out  # rules.toml's framework_errors entry


def test_a_framework_that_hangs_is_stopped_at_its_time_limit(tmp_path: Path, capsys) -> None:
    m = Machine.healthy_h100(tmp_path)
    m.framework("tensorflow", gpus=["/physical_device:GPU:0"], hang=True)
    m.timeouts.update(compute_s=1.0)
    code, out = _doctor(m, capsys)
    assert code == 1 and "did not finish within 1 s while it computed on GPU 0" in out, out


def test_an_import_that_aborts_is_a_framework_cause_in_its_words(tmp_path: Path, capsys) -> None:
    m = Machine.healthy_h100(tmp_path)
    check = "F0000 00:00:1.0 1 cuda_executor.cc:1] Check failed: cuda_context != nullptr"
    m.framework("tensorflow", gpus=["/physical_device:GPU:0"], abort=check, at="import")
    code, out = _doctor(m, capsys)
    assert code == 1 and "verdict: BROKEN at the framework layer" in out, out
    assert f"importing tensorflow was killed by SIGABRT. It said: {check}" in out, out
    assert 'reinstall it: make env EXTRAS="jax gpu"' in out
