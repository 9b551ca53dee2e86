"""Shared fixtures of the smoke checks: level settings, the GPU diagnosis and its NVML picture, the
framework's GPUs."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from gpu_doctor import Diagnosis, diagnose
from gpu_doctor import system as gpu_system
from smoke_tests import backend
from smoke_tests.plugin import check, out_dir  # noqa: F401 - `check` also when pytest runs these directly
from smoke_tests.speed import level_settings, settings


@pytest.fixture(scope="session")
def level() -> dict[str, Any]:
    return level_settings(os.environ.get("SMOKE_LEVEL", "quick"))


@pytest.fixture(scope="session")
def report_dir() -> Path:
    path = out_dir()
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def diagnosis(report_dir: Path) -> Diagnosis:
    """The layered GPU diagnosis without importing the framework (the framework checks do that part)."""
    result = diagnose(gpu_system.current(), backend.name(), ask_framework=False, ask_compute=False)
    (report_dir / "system.json").write_text(json.dumps(result.nvml, default=str))  # the report's GPU section
    (report_dir / "diagnosis.json").write_text(json.dumps(result.to_dict(), default=str))
    return result


@pytest.fixture(scope="session")
def system(diagnosis: Diagnosis) -> dict[str, Any]:
    """NVML's picture: driver, CUDA driver version, every GPU's facts (empty when there is no GPU)."""
    return diagnosis.nvml


@pytest.fixture(scope="session")
def framework_gpus() -> list[str]:
    return backend.gpu_devices()


@pytest.fixture(scope="session")
def device(system: dict[str, Any], framework_gpus: list[str]) -> str:
    """Where the checks compute: "gpu" when the framework has one, else "cpu"."""
    return "gpu" if framework_gpus else "cpu"


@pytest.fixture
def need_gpu(system: dict[str, Any], framework_gpus: list[str]) -> None:
    if not framework_gpus:
        why = "see system/gpu_found" if not system["available"] else "see framework/gpu_visible"
        pytest.skip(f"n/a: no GPU ({why})")


@pytest.fixture(scope="session")
def seed() -> int:
    return int(os.environ.get("SMOKE_SEED", settings()["framework"]["seed"]))
