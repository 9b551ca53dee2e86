"""Debian 12's real NVIDIA user-space (non-free libcuda1, libnvidia-ml1 535, fetched by
scripts/nvidia-userspace.sh) on the loader path, with a GPU staged where the doctor reads the file system
(GPU_DOCTOR_ROOT: the PCI bus, the loaded module, the device nodes) but no kernel module really loaded: the
NVML layer reports "driver not loaded" from the real libnvidia-ml (nvmlInit returns 9) and the CUDA layer
CUDA_ERROR_NO_DEVICE (100) from the real libcuda. Negative controls: without the libraries on the loader path
the same layers say they are missing. Each run is in a private /dev (libcuda, as root, creates
/dev/nvidiactl)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

from tests.conftest import REPO
from tests.gpu_doctor.staging import H100_PCI_ID, Machine
from tests.gpu_env import namespace
from tests.gpu_env.conftest import clean_env


@pytest.fixture
def staged_gpu(tmp_path: Path) -> Path:
    """An H100 bound to the nvidia module, the module loaded and the device nodes there, as files."""
    m = Machine(tmp_path / "root")
    m.pci_device("0000:01:00.0", "0x10de", "0x030200", H100_PCI_ID, "nvidia")
    m.load_module("535.261.03", open_flavour=False)
    m.device_nodes()
    return m.root


def _python(code_or_module: list[str], libraries: Path | None, root: Path | None = None) -> str:
    env = clean_env(**({"LD_LIBRARY_PATH": str(libraries)} if libraries else {}))
    if root is not None:
        env["GPU_DOCTOR_ROOT"] = str(root)
    proc = namespace.run([sys.executable, *code_or_module], private_dev=True, cwd=REPO, env=env, timeout=300)
    assert proc.returncode in (0, 1), proc.stdout[-2000:] + proc.stderr[-3000:]
    return proc.stdout


def test_the_real_libraries_answer_with_their_own_codes(nvidia_userspace: Path) -> None:
    code = (
        "import ctypes, json; cuda = ctypes.CDLL('libcuda.so.1'); nvml = ctypes.CDLL('libnvidia-ml.so.1');"
        "v = ctypes.c_int(); cuda.cuDriverGetVersion(ctypes.byref(v));"
        "print(json.dumps({'cuInit': cuda.cuInit(0), 'driver_cuda': v.value,"
        " 'nvmlInit_v2': nvml.nvmlInit_v2()}))"
    )
    answer = json.loads(_python(["-c", code], nvidia_userspace).strip().splitlines()[-1])
    assert answer["cuInit"] == 100 and answer["nvmlInit_v2"] == 9, answer  # NO_DEVICE; DRIVER_NOT_LOADED
    assert answer["driver_cuda"] == 12020  # branch 535 is CUDA 12.2
    assert (Path(nvidia_userspace).parent / "version").read_text().startswith("535.")


def test_nvml_layer_says_driver_not_loaded(nvidia_userspace: Path, staged_gpu: Path) -> None:
    out = _python(["-m", "gpu_doctor", "--lower-only", "--json"], nvidia_userspace, staged_gpu)
    diagnosis = json.loads(out)
    layers = {layer["name"]: layer for layer in diagnosis["layers"]}
    assert diagnosis["first_broken"] == "nvml", {k: v["status"] for k, v in layers.items()}
    assert layers["nvml"]["facts"]["error"] == "NVMLError_DriverNotLoaded"  # nvmlInit's 9, via nvidia-ml-py
    assert layers["nvml"]["cause"] == "the NVIDIA kernel driver is not loaded"
    assert "sudo modprobe nvidia" in layers["nvml"]["remedy"]
    # Negative control: the same staged machine without the libraries on the loader path.
    without = json.loads(_python(["-m", "gpu_doctor", "--lower-only", "--json"], None, staged_gpu))
    nvml = next(x for x in without["layers"] if x["name"] == "nvml")
    assert nvml["facts"]["error"] == "NVMLError_LibraryNotFound", nvml


def test_cuda_layer_reports_no_device(nvidia_userspace: Path, staged_gpu: Path) -> None:
    layer = json.loads(_python(["-m", "tests.gpu_env.probes", "cuda-layer"], nvidia_userspace, staged_gpu))
    assert layer["status"] == "BROKEN", layer
    assert layer["cause"].startswith("cuInit: CUDA_ERROR_NO_DEVICE (100)"), layer["cause"]
    without = json.loads(_python(["-m", "tests.gpu_env.probes", "cuda-layer"], None, staged_gpu))
    assert without["status"] == "BROKEN" and "libcuda.so.1 does not load" in without["cause"], without
