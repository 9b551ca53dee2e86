"""Shared fixtures of the smoke checks: the options the runner passed (smoke_tests/plugin.py), level
settings, the GPU diagnosis and its NVML picture, the framework's GPUs, the workloads' data, and the
workload worker (started as soon as the checks are collected, so that its framework import overlaps the
checks before the workloads)."""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from gpu_doctor import Diagnosis, devices, diagnose
from gpu_doctor import system as gpu_system
from smoke_tests import framework_ops
from smoke_tests.plugin import CheckRecord, SmokeOptions, options
from smoke_tests.settings import settings
from smoke_tests.worker import WorkloadWorker

# The plugin's options and `check` fixture also when pytest runs these checks directly (the runner loads
# it with -p; pytest registers it once).
pytest_plugins = ("smoke_tests.plugin",)

WORKLOAD_MODULE = "test_3_workloads.py"
_WORKER = pytest.StashKey[tuple[WorkloadWorker, str]]()


def pytest_collection_finish(session: pytest.Session) -> None:
    items = [i for i in session.items if i.nodeid.split("::")[0].endswith(WORKLOAD_MODULE)]
    # A level without workloads leaves one item with an empty parameter set (skipped): no worker for it.
    items = [
        i for i in items if isinstance(getattr(getattr(i, "callspec", None), "params", {}).get("name"), str)
    ]
    opts = options(session.config)
    if not items or opts.isolation != "worker":
        return
    names = [i.callspec.params["name"] for i in items]
    # --smoke-worker-entry: a test hook, a stand-in for the workloads' CLI (tests/smoke/test_worker.py).
    worker = WorkloadWorker(opts.out / "workloads" / "worker.log", names, opts.worker_entry)
    worker.start()
    session.config.stash[_WORKER] = (worker, items[-1].nodeid)


def pytest_sessionfinish(session: pytest.Session) -> None:
    entry = session.config.stash.get(_WORKER, None)
    if entry is not None:
        entry[0].stop()


@pytest.fixture
def workload_worker(request: pytest.FixtureRequest) -> Any:
    """The session's worker, or None when the workloads run as subprocesses. Stopped after the last
    workload, so that it holds no memory (GPU memory included) while the speed checks run."""
    entry = request.config.stash.get(_WORKER, None)
    if entry is None:
        yield None
        return
    worker, last = entry
    yield worker
    if request.node.nodeid == last:
        worker.stop()


@pytest.fixture(scope="session")
def level(smoke_options: SmokeOptions) -> Mapping[str, Any]:
    """The settings of the level the runner chose (resolved once, in smoke_options)."""
    return smoke_options.level.settings


@pytest.fixture(scope="session")
def report_dir(smoke_options: SmokeOptions) -> Path:
    path = smoke_options.out
    path.mkdir(parents=True, exist_ok=True)
    return path


@pytest.fixture(scope="session")
def require_gpu(smoke_options: SmokeOptions) -> bool:
    """No NVIDIA GPU is a failure (--require-gpu / REQUIRE_GPU=1 at the runner)."""
    return smoke_options.require_gpu


@pytest.fixture(scope="session")
def workload_data(smoke_options: SmokeOptions) -> tuple[Path | None, str]:
    """MNIST data for the workloads and the ladder, and where it came from: the user's (--data), the
    settings' default, or None: the workloads' own chain."""
    from workloads.data.images import KNOWN_DATASETS, holds_idx

    if smoke_options.data is not None:
        return smoke_options.data, "configured (--data)"
    default = settings()["data"]["default"]
    installed = KNOWN_DATASETS.get(default, {}).get("debian_path")
    if installed and holds_idx(Path(installed)):
        return Path(installed), f"settings [data] default: {default} (Debian's package)"
    return None, "none installed: the workloads' own chain (Keras's MNIST, else the digits fallback)"


@pytest.fixture(scope="session")
def diagnosis(smoke_options: SmokeOptions, report_dir: Path) -> Diagnosis:
    """The layered GPU diagnosis without importing the framework (the framework checks do that part): the
    runner's (--smoke-diagnosis), which these checks never probe again. Only when the checks run on their
    own (pytest directly; or the runner could not write its diagnosis, a full disk) do they probe here."""
    if smoke_options.diagnosis is not None:
        return Diagnosis.from_dict(json.loads(smoke_options.diagnosis.read_text()))
    result = diagnose(gpu_system.current(), framework_ops.name(), ask_framework=False, ask_compute=False)
    # The report's GPU section, as this process saw it; on a full disk the runner uses its own probe's.
    with contextlib.suppress(OSError):
        (report_dir / "system.json").write_text(json.dumps(result.nvml, default=str))
        (report_dir / "diagnosis.json").write_text(json.dumps(result.to_dict(), default=str))
    return result


@pytest.fixture(scope="session")
def system(diagnosis: Diagnosis) -> dict[str, Any]:
    """NVML's picture: driver, CUDA driver version, every GPU's facts (empty when there is no GPU)."""
    return diagnosis.nvml


@pytest.fixture(scope="session")
def framework_gpus() -> list[str]:
    return framework_ops.gpu_devices()


@pytest.fixture(scope="session")
def framework_gpu(diagnosis: Diagnosis) -> dict[str, Any]:
    """The physical GPU the framework calls GPU 0 (CUDA ordinal 0): its NVML index, PCI bus id, UUID and name,
    from the CUDA driver layer's devices matched to NVML by bus id (gpu_doctor.devices); {} when there is
    none.
    NVML's GPU 0 is another GPU whenever CUDA orders them differently or CUDA_VISIBLE_DEVICES picks one."""
    cuda = diagnosis.layer("cuda_driver").facts.get("devices") or []
    gpus = diagnosis.nvml.get("gpus", [])
    if cuda:
        return devices.physical(cuda, gpus, 0)
    shown = devices.visible(gpus, os.environ).gpus
    keys = ("index", "pci_bus_id", "uuid", "name")
    return {"cuda_ordinal": 0, **{k: shown[0].get(k) for k in keys}} if shown else {}


@pytest.fixture(autouse=True)
def _where_it_ran(request: pytest.FixtureRequest, check: CheckRecord) -> None:
    """Every check that computes says which physical GPU it ran on (NVML index, bus id, UUID), or the CPU."""
    if "device" in request.fixturenames:
        on_gpu = request.getfixturevalue("device") == "gpu"
        check.detail("ran_on", request.getfixturevalue("framework_gpu") if on_gpu else "cpu")


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
def seed(smoke_options: SmokeOptions) -> int:
    return smoke_options.seed
