"""System checks: the GPU doctor's layered diagnosis (gpu_doctor), one check per layer, and hostile
environment variables. With an NVIDIA GPU on the machine, any broken layer fails here (never a skip);
without one the layers are n/a, unless the GPU is required (--require-gpu / REQUIRE_GPU=1)."""

from __future__ import annotations

import os

import pytest

from gpu_doctor import Diagnosis, rules
from gpu_doctor.model import BROKEN, NA, NOT_CHECKED, WARN
from smoke_tests.plugin import CheckRecord

# The layers below the framework import; the framework layer here applies the build rules only (the
# framework checks import it), and the compute layer is the framework checks' job.
LAYERS = (
    "kernel_module",
    "device_nodes",
    "nvml",
    "health",
    "cuda_driver",
    "cuda_libraries",
    "memory",
    "framework",
    "containers",
)


def test_gpu_found(check: CheckRecord, diagnosis: Diagnosis, require_gpu: bool) -> None:
    hardware = diagnosis.layer("hardware")
    check.detail("hardware", hardware.facts)
    if diagnosis.staged_root:
        check.warn(f"staged root {diagnosis.staged_root} (test hook GPU_DOCTOR_ROOT): not this machine")
    if not diagnosis.gpu_found:
        message = f"no NVIDIA GPU found: {diagnosis.no_gpu_reason}"
        if require_gpu:
            pytest.fail(f"{message} (REQUIRE_GPU=1)")
        pytest.skip(message)
    check.figure(
        "gpu_count", max(len(hardware.facts.get("pci_gpus", [])), len(diagnosis.nvml.get("gpus", []))), "GPUs"
    )


@pytest.mark.parametrize("name", LAYERS)
def test_layer(name: str, check: CheckRecord, diagnosis: Diagnosis) -> None:
    layer = diagnosis.layer(name)
    check.detail("status", layer.status)
    check.detail("summary", layer.summary)
    check.detail("facts", layer.facts)
    for note in layer.notes:
        check.warn(note)
    if layer.status == BROKEN:
        pytest.fail(f"{layer.title}: {layer.cause} -> run: {layer.remedy}")
    if layer.status == NOT_CHECKED:
        pytest.skip(f"n/a: {layer.summary}")
    if layer.status == NA:
        why = "no NVIDIA GPU (see system/gpu_found)" if not diagnosis.gpu_found else layer.summary
        pytest.skip(f"n/a: {why}")
    if layer.status == WARN and layer.remedy:
        check.detail("remedy", layer.remedy)


def test_environment_variables(check: CheckRecord, diagnosis: Diagnosis) -> None:
    found = [f"{f} (DCGM flags it)" for f in rules.hostile_env_vars(os.environ)]
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if diagnosis.gpu_found and rules.hides_all_gpus(visible):
        found.append(f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from CUDA programs")
    check.detail("checked", [*rules.rules()["environment"]["dcgm_hostile"], "CUDA_VISIBLE_DEVICES"])
    assert not found, (
        "environment variables known to break CUDA programs: " + "; ".join(found) + " (unset them)"
    )
