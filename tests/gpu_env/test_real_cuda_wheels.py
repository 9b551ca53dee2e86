"""The real CUDA wheels, with an H100 faked on the PCI bus and no driver (tests/gpu_env/conftest.py): the same
`make smoke-test` path a GPU host takes installs the GPU set and fails naming the driver; the doctor's
libraries layer finds and loads every library as TensorFlow's own loader does (both with the project's loader
hook, and without it, where both miss libcusolver.so.11); TensorFlow's and JAX's imports get past every dlopen
and stop at cuInit (Debian's real libcuda, no kernel module)."""

from __future__ import annotations

import json
import subprocess

import pytest

from tests.gpu_env.conftest import GpuCheckout

pytestmark = pytest.mark.slow
GPU_SET = (
    "nvidia-cudnn-cu12",
    "nvidia-cublas-cu12",
    "nvidia-cusolver-cu12",
    "nvidia-nccl-cu12",
    "jax-cuda12-plugin",
)


def test_make_smoke_test_installs_the_gpu_set_and_fails_naming_the_driver(gpu_checkout: GpuCheckout) -> None:
    make, out = gpu_checkout.make, gpu_checkout.make.stdout
    assert make.returncode == 2, out[-3000:] + make.stderr[-3000:]  # make's code for a failed recipe
    assert (
        ".venv-run: extras jax gpu" in out
        and "NVIDIA GPU on the PCI bus: 0000:01:00.0 (10de:2330)" in make.stderr
    )
    assert (gpu_checkout.path / ".venv-run" / ".synced-jax+gpu").is_file()
    assert "SMOKE TEST FAILED" in out and "BROKEN at the kernel module layer" in out, out[-3000:]
    # "no NVIDIA driver is installed"; in a container (this project's machines): "the host has no NVIDIA
    # kernel module loaded". Either way the driver, with `make provision` to install it.
    assert "no NVIDIA driver is installed" in out or "the host has no NVIDIA kernel module loaded" in out
    assert "no NVIDIA GPU found" not in out and "BROKEN at the CUDA libraries" not in out
    report = json.loads((gpu_checkout.report_dir / "report.json").read_text())
    assert report["verdict"] == "FAILED" and report["diagnosis"]["first_broken"] == "kernel_module"
    checks = {c["name"]: c for c in report["checks"]}
    assert checks["gpu_found"]["status"] == "passed"
    assert checks["layer[kernel_module]"]["status"] == "failed"
    assert "make provision" in checks["layer[kernel_module]"]["message"]
    code = f"import importlib.metadata as m, json; print(json.dumps({{p: m.version(p) for p in {GPU_SET}}}))"
    listed = subprocess.run([gpu_checkout.python, "-c", code], capture_output=True, text=True, check=True)
    assert all(json.loads(listed.stdout).values()), listed.stdout  # the GPU set is installed in .venv-run


@pytest.mark.parametrize("hook", ["on", "off"])
def test_the_doctor_finds_each_library_where_tensorflow_does(gpu_checkout: GpuCheckout, hook: str) -> None:
    """With the loader hook TensorFlow's own loader opens all eight libraries and the doctor says OK with
    their versions; without it (KERAS_WORKSTATION_PRELOAD=0, the negative control) TensorFlow misses exactly
    libcusolver.so.11, and the doctor says BROKEN naming it: never OK where TensorFlow fails."""
    env = {"KERAS_WORKSTATION_PRELOAD": "1" if hook == "on" else "0"}
    opened = gpu_checkout.probe("tensorflow-loader", env=env)
    layer = gpu_checkout.probe("libraries", "tensorflow", env=env)
    missed = sorted(k for k, ok in opened.items() if k != "_stderr" and not ok)
    if hook == "on":
        assert missed == [], opened
        assert layer["status"] == "OK", layer
        versions = {k: layer["facts"][k]["loaded_version"] for k in ("cudart", "cudnn", "cublas", "nccl")}
        assert all(versions.values()), versions  # read from the libraries themselves
        assert versions["cudart"].startswith("12.") and versions["cudnn"].startswith("9.")
        assert "cusolver preloaded by the loader hook" in layer["summary"]
        assert all(f"lib{k}" in layer["summary"].lower() for k in ("cudart", "cudnn", "cublas", "nccl"))
    else:
        assert missed == ["cusolver"], opened
        assert layer["status"] == "BROKEN" and layer["facts"]["cusolver"]["path"] is None, layer
        assert (
            "libcusolver.so.11 (cusolver) is not on tensorflow 2.21.0's library search path" in layer["cause"]
        )


def test_jax_loads_the_same_wheels(gpu_checkout: GpuCheckout) -> None:
    layer = gpu_checkout.probe("libraries", "jax")
    assert layer["status"] == "OK" and "as jax loads them" in layer["summary"], layer


def test_tensorflow_and_jax_get_past_every_dlopen_and_stop_at_cuinit(
    gpu_checkout: GpuCheckout, nvidia_userspace
) -> None:
    """Debian's libcuda.so.1 on the loader path, no kernel module: TensorFlow finds libcuda and the CUDA
    runtime and fails only at cuInit (CUDA_ERROR_NO_DEVICE); JAX's plugin loads its wheels and fails there
    too. In a private /dev: libcuda, run as root, creates /dev/nvidiactl."""
    env = {"LD_LIBRARY_PATH": str(nvidia_userspace), "TF_CPP_MIN_LOG_LEVEL": "0"}
    tf = gpu_checkout.probe("tensorflow-devices", env=env, private_dev=True)
    assert tf["gpus"] == []
    assert "failed call to cuInit" in tf["_stderr"] and "CUDA_ERROR_NO_DEVICE" in tf["_stderr"], tf[
        "_stderr"
    ][-3000:]
    for never in ("Could not find cuda drivers", "Could not load dynamic library", "Cannot dlopen"):
        assert never not in tf["_stderr"], never
    jax = gpu_checkout.probe("jax-devices", env=env, private_dev=True)
    assert jax["gpus"] == [], jax  # the plugin's start-up check says why, on stderr:
    assert "cuInit(0) failed: CUDA_ERROR_NO_DEVICE" in jax["_stderr"], jax["_stderr"][-3000:]
