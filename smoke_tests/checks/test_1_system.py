"""System checks through NVML: driver, GPUs, health, compatibility with the framework's CUDA build."""

from __future__ import annotations

import os
from typing import Any

import pytest

from smoke_tests import backend, compat, nvml
from smoke_tests.plugin import CheckRecord


def _require_gpu() -> bool:
    return os.environ.get("REQUIRE_GPU", "") not in ("", "0", "false", "no")


def _need_nvml(system: dict[str, Any]) -> None:
    if not system["available"]:
        pytest.skip("n/a: no NVIDIA GPU found (why: see system/nvml_loads)")


def test_nvml_loads(check: CheckRecord, system: dict[str, Any]) -> None:
    check.detail("nvml", {k: v for k, v in system.items() if k != "gpus"})
    if not system["available"]:
        message = f"no NVIDIA GPU found: {system['reason']}"
        if _require_gpu():
            pytest.fail(f"{message} (REQUIRE_GPU=1)")
        pytest.skip(message)
    check.detail("gpus", system["gpus"])
    check.figure("gpu_count", len(system["gpus"]), "GPUs")
    for key in ("driver_version", "cuda_driver_version"):
        assert not str(system.get(key, "")).startswith("error"), f"{key}: {system.get(key)}"


def test_gpu_health(check: CheckRecord, system: dict[str, Any]) -> None:
    _need_nvml(system)
    problems = []
    for gpu in system["gpus"]:
        for warning in nvml.gpu_warnings(gpu):
            check.warn(f"GPU {gpu['index']}: {warning}")
        problems += [f"GPU {gpu['index']} ({gpu['name']}): {p}" for p in nvml.gpu_health_problems(gpu)]
        check.detail(f"gpu{gpu['index']}", gpu)
    assert not problems, "; ".join(problems)


def test_driver_supports_framework_cuda(check: CheckRecord, system: dict[str, Any]) -> None:
    build = backend.build_info()
    check.detail("build", build)
    _need_nvml(system)
    if build is None:
        pytest.skip(f"n/a: the {backend.name()} backend does not report the CUDA it was built with")
    ok, message = compat.driver_supports_build(system.get("cuda_driver_version"), build["cuda_version"])
    check.detail("verdict", message)
    assert ok, message


def test_compute_capability_in_build(check: CheckRecord, system: dict[str, Any]) -> None:
    build = backend.build_info()
    _need_nvml(system)
    if build is None or not build.get("archs"):
        pytest.skip(f"n/a: the {backend.name()} backend does not list the GPU architectures it was built for")
    failures = []
    for gpu in system["gpus"]:
        ok, message = compat.compute_capability_supported(gpu["compute_capability"], build["archs"])
        check.detail(f"gpu{gpu['index']}", message)
        if not ok:
            failures.append(f"GPU {gpu['index']}: {message}")
    assert not failures, "; ".join(failures)


def test_environment_variables(check: CheckRecord, system: dict[str, Any]) -> None:
    found = compat.hostile_env_vars(os.environ, gpu_present=system["available"])
    check.detail("checked", [*compat.DCGM_BAD_ENV_VARS, "CUDA_VISIBLE_DEVICES"])
    assert not found, (
        "environment variables known to break CUDA programs: " + "; ".join(found) + " (unset them)"
    )
