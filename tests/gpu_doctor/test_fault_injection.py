"""Fault injection: each failure mode users report, staged at the operating-system boundary only (a fake PCI
tree, fake /proc and /dev entries, fake NVML and libcuda return codes, environment variables, a library path
with a missing or older library), then diagnosed by the real probing code through the real CLI
(`python -m gpu_doctor`'s main). Each case asserts the layer, the cause, the remedy and the exit code, and
cites the public issue it comes from."""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pynvml
import pytest

from gpu_doctor.cli import main
from tests.gpu_doctor.staging import (
    H100_NVML,
    FakeCuda,
    Machine,
    container_without_gpus,
    fake_jax,
    fake_tensorflow,
    libcuda_not_mounted,
    nvml_error,
)
from tests.smoke.fake_nvml import FakeNvml


def _nvml(m: Machine, **changes: object) -> None:
    m.nvml = FakeNvml(**{**H100_NVML, **changes})


@dataclass
class Mode:
    id: str
    source: str  # the public issue the mode comes from
    stage: Callable[[Machine], None]
    layer: str  # the layer the verdict names ("-" for a warning-only case)
    cause: str
    remedy: str
    exit: int
    argv: tuple[str, ...] = ("--no-compute",)


# --- staging helpers ----------------------------------------------------------------------------------------
def no_driver(m: Machine) -> None:
    m.unload_module()
    m.bind("0000:01:00.0", None)
    for n in ("nvidiactl", "nvidia0", "nvidia-uvm"):
        m.remove(f"dev/{n}")


def nouveau(m: Machine) -> None:
    no_driver(m)
    m.bind("0000:01:00.0", "nouveau")


def secure_boot(m: Machine) -> None:
    no_driver(m)
    m.install_module("6.8.0-45-generic")
    m.secure_boot(True)


def dkms_other_kernel(m: Machine) -> None:
    no_driver(m)
    m.install_module("6.8.0-40-generic")


def blackwell_proprietary(m: Machine) -> None:
    m.load_module("570.133.20", open_flavour=False)
    m.bind("0000:01:00.0", None)
    m.write("sys/bus/pci/devices/0000:01:00.0/device", "0x2b85\n")


def uvm_missing(m: Machine) -> None:
    m.remove("dev/nvidia-uvm")
    m.remove("sys/module/nvidia_uvm")


def nvml_unknown_in_container(m: Machine) -> None:
    m.write(".dockerenv")
    _nvml(m, init_error=pynvml.NVML_ERROR_UNKNOWN)


def nvml_missing_in_container(m: Machine) -> None:
    m.write(".dockerenv")
    _nvml(m, init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def mig_without_instances(m: Machine) -> None:
    _nvml(
        m,
        nvmlDeviceGetMigMode=[1, 1],
        nvmlDeviceGetName="NVIDIA A100-SXM4-80GB",
        nvmlDeviceGetCudaComputeCapability=(8, 0),
    )


def cuda_visible_devices(value: str, init_rc: int, count: int | None) -> Callable[[Machine], None]:
    def stage(m: Machine) -> None:
        m.env["CUDA_VISIBLE_DEVICES"] = value
        m.cuda = FakeCuda(init_rc=init_rc, count=count)

    return stage


def stub_libcuda(m: Machine) -> None:
    m.env["LD_LIBRARY_PATH"] = "/usr/local/cuda-12.5/lib64/stubs:/usr/local/cuda-12.5/lib64"
    m.cuda = FakeCuda(init_rc=34)


def driver_550_on_h100(m: Machine) -> None:
    _nvml(m, nvmlSystemGetDriverVersion="550.54.15", nvmlSystemGetCudaDriverVersion=12040)
    m.cuda = FakeCuda(driver=12040)


def driver_cuda_11(m: Machine) -> None:
    _nvml(
        m,
        nvmlSystemGetDriverVersion="520.61.05",
        nvmlSystemGetCudaDriverVersion=11080,
        nvmlDeviceGetName="NVIDIA A100-SXM4-80GB",
        nvmlDeviceGetCudaComputeCapability=(8, 0),
    )
    m.cuda = FakeCuda(driver=11080, devices=[("NVIDIA A100-SXM4-80GB", (8, 0))])


def cudnn_missing(m: Machine) -> None:
    m.uninstall("nvidia-cudnn-cu12")


def tensorflow_without_cuda_wheels(m: Machine) -> None:
    for package in list(m.metadata.versions):
        if package.startswith("nvidia-"):
            m.uninstall(package)


def older_cudnn_shadows(m: Machine) -> None:
    old = m.write("usr/local/cudnn-9.1/lib/libcudnn.so.9")
    m.loader.add(old, "9.1.0")
    m.env["LD_LIBRARY_PATH"] = str(old.parent)


def memory_held(m: Machine) -> None:
    mem = types.SimpleNamespace(total=80 * 2**30, used=int(79.6 * 2**30), free=int(0.4 * 2**30))
    procs = [types.SimpleNamespace(pid=4242, usedGpuMemory=79 * 2**30)]
    _nvml(m, nvmlDeviceGetMemoryInfo=mem, nvmlDeviceGetComputeRunningProcesses=procs)
    m.write("proc/4242/comm", "python3\n")


def cudnn_init_fails_while_memory_is_held(m: Machine) -> None:
    mem = types.SimpleNamespace(total=80 * 2**30, used=60 * 2**30, free=20 * 2**30)
    procs = [types.SimpleNamespace(pid=4242, usedGpuMemory=60 * 2**30)]
    _nvml(m, nvmlDeviceGetMemoryInfo=mem, nvmlDeviceGetComputeRunningProcesses=procs)
    m.modules["tensorflow"] = fake_tensorflow(
        ["/physical_device:GPU:0"],
        fail="Failed to get convolution algorithm. This is probably because cuDNN failed to initialize, "
        "so try looking to see if a warning log message was printed above.",
    )


def rtx_5090(m: Machine) -> None:
    m.write("sys/bus/pci/devices/0000:01:00.0/device", "0x2b85\n")
    _nvml(
        m,
        nvmlDeviceGetName="NVIDIA GeForce RTX 5090",
        nvmlDeviceGetCudaComputeCapability=(12, 0),
        nvmlDeviceGetEccMode=nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED),
    )
    m.cuda = FakeCuda(devices=[("NVIDIA GeForce RTX 5090", (12, 0))])


def wsl2(m: Machine) -> None:
    m.remove("sys/bus/pci/devices/0000:01:00.0")
    m.unload_module()
    for n in ("nvidiactl", "nvidia0", "nvidia-uvm"):
        m.remove(f"dev/{n}")
    m.write("dev/dxg")
    m.write("proc/sys/kernel/osrelease", "5.15.167.4-microsoft-standard-WSL2\n")
    _nvml(m, nvmlDeviceGetPersistenceMode=nvml_error(pynvml.NVML_ERROR_NOT_SUPPORTED))


def wsl2_without_library_path(m: Machine) -> None:
    wsl2(m)
    _nvml(m, init_error=pynvml.NVML_ERROR_LIBRARY_NOT_FOUND)


def jax_cpu_only(m: Machine) -> None:
    m.env["KERAS_BACKEND"] = "jax"
    m.metadata.versions.update({"jax": "0.10.2", "jaxlib": "0.10.2"})


def jax_cuda13_plugin(m: Machine) -> None:
    m.env["KERAS_BACKEND"] = "jax"
    m.metadata.versions.update({"jax": "0.10.2", "jaxlib": "0.10.2", "jax-cuda13-plugin": "0.10.2"})


def jax_reason(m: Machine) -> None:
    _nvml(m, nvmlSystemGetDriverVersion="580.65.06", nvmlSystemGetCudaDriverVersion=13000)
    m.cuda = FakeCuda(driver=13000)
    m.env["KERAS_BACKEND"] = "jax"
    m.metadata.versions.update({"jax": "0.10.2", "jaxlib": "0.10.2", "jax-cuda13-plugin": "0.10.2"})
    m.modules["jax"] = fake_jax(
        "Unable to initialize backend 'cuda': FAILED_PRECONDITION: No visible GPU devices. (you may need "
        "to uninstall the failing plugin package, or set JAX_PLATFORMS=cpu to skip this backend.)"
    )


def tensorflow_cannot_dlopen(m: Machine) -> None:
    m.modules["tensorflow"] = fake_tensorflow(
        [],
        log="W0000 gpu_device.cc:2344] Cannot dlopen some GPU libraries. Please make sure the missing "
        "libraries mentioned above are installed properly.\n",
    )


MODES = [
    Mode(
        "gpu-on-bus-no-driver",
        "tensorflow/tensorflow#44869",
        no_driver,
        "kernel module",
        "no NVIDIA driver is installed",
        "make provision",
        1,
    ),
    Mode(
        "nouveau-bound",
        "mattshma/bigdata#133",
        nouveau,
        "kernel module",
        "nouveau driver owns GPU 0000:01:00.0",
        "blacklist nouveau",
        1,
    ),
    Mode(
        "secure-boot-refuses-module",
        "NVIDIA/gpu-driver-container#44",
        secure_boot,
        "kernel module",
        "Secure Boot is on",
        "mokutil --import",
        1,
    ),
    Mode(
        "dkms-built-for-another-kernel",
        "negativo17/nvidia-driver#56",
        dkms_other_kernel,
        "kernel module",
        "built for kernel 6.8.0-40-generic but the running kernel is 6.8.0-45-generic",
        "dkms autoinstall",
        1,
    ),
    Mode(
        "blackwell-on-proprietary-module",
        "NVIDIA/open-gpu-kernel-modules#872",
        blackwell_proprietary,
        "kernel module",
        "did not take GPU 0000:01:00.0 (10de:2b85)",
        "nvidia-driver-580-open",
        1,
    ),
    Mode(
        "container-without-gpus",
        "mmartial/ComfyUI-Nvidia-Docker#57",
        container_without_gpus,
        "device nodes",
        "started without GPU access",
        "--gpus all",
        1,
    ),
    Mode(
        "nvidia-uvm-missing",
        "NVIDIA/nvidia-docker#423",
        uvm_missing,
        "device nodes",
        "/dev/nvidia-uvm is missing",
        "modprobe nvidia-uvm",
        1,
    ),
    Mode(
        "driver-library-mismatch",
        "NVIDIA/ubuntu-packaging-nvidia-driver#3",
        lambda m: _nvml(m, init_error=pynvml.NVML_ERROR_LIB_RM_VERSION_MISMATCH),
        "NVML",
        "driver/library version mismatch",
        "reboot",
        1,
    ),
    Mode(
        "gpu-lost-during-probe",
        "NVIDIA/open-gpu-kernel-modules#507, leptonai/gpud#604",
        lambda m: _nvml(m, handle_error=pynvml.NVML_ERROR_GPU_IS_LOST),
        "NVML",
        "fell off the bus (Xid 79)",
        "dmesg | grep -i xid",
        1,
    ),
    Mode(
        "nvml-unknown-error-in-container",
        "NVIDIA/nvidia-container-toolkit#251",
        nvml_unknown_in_container,
        "NVML",
        "daemon-reload on the host",
        "restart the container",
        1,
    ),
    Mode(
        "nvml-not-mounted-in-container",
        "NVIDIA/nvidia-docker#854",
        nvml_missing_in_container,
        "NVML",
        "libnvidia-ml.so.1 was not mounted",
        "--gpus all",
        1,
    ),
    Mode(
        "nvml-no-permission",
        "NVIDIA/nvidia-container-toolkit#268",
        lambda m: _nvml(m, init_error=pynvml.NVML_ERROR_NO_PERMISSION),
        "NVML",
        "no permission",
        "usermod -aG video,render",
        1,
    ),
    Mode(
        "mig-enabled-without-instances",
        "pytorch/pytorch#95784",
        mig_without_instances,
        "NVML",
        "MIG is enabled on GPU 0",
        "nvidia-smi mig",
        1,
    ),
    Mode(
        "cuinit-999-after-suspend",
        "pytorch/pytorch#88639",
        lambda m: setattr(m, "cuda", FakeCuda(init_rc=999)),
        "CUDA driver",
        "CUDA_ERROR_UNKNOWN (999)",
        "rmmod nvidia_uvm && sudo modprobe nvidia_uvm",
        1,
    ),
    Mode(
        "cuda-visible-devices-empty",
        "tensorflow/tensorflow#26460",
        cuda_visible_devices("", 100, None),
        "CUDA driver",
        "CUDA_VISIBLE_DEVICES='' hides every GPU",
        "unset CUDA_VISIBLE_DEVICES",
        1,
    ),
    Mode(
        "cuda-visible-devices-invalid",
        "qubvel-org/segmentation_models.pytorch#289",
        cuda_visible_devices("5", 0, 0),
        "CUDA driver",
        "CUDA_VISIBLE_DEVICES='5' names no GPU that exists",
        "nvidia-smi -L",
        1,
    ),
    Mode(
        "libcuda-stub-on-path",
        "numba/numba#8985",
        stub_libcuda,
        "CUDA driver",
        "stub",
        "remove the toolkit's .../lib64/stubs",
        1,
    ),
    Mode(
        "libcuda-not-mounted",
        "mudler/LocalAI#11973",
        libcuda_not_mounted,
        "CUDA driver",
        "NVIDIA_DRIVER_CAPABILITIES lacks 'compute'",
        "NVIDIA_DRIVER_CAPABILITIES=compute,utility",
        1,
    ),
    Mode(
        "h100-ptx-needs-newer-driver",
        "huggingface/candle#2498",
        driver_550_on_h100,
        "CUDA driver",
        "minor-version compatibility does not cover PTX",
        "555.42.02",
        1,
    ),
    Mode(
        "driver-a-major-behind",
        "tensorflow/tensorflow#23263",
        driver_cuda_11,
        "CUDA driver",
        "the build needs CUDA 12.x",
        "525.60.13",
        1,
    ),
    Mode(
        "cudnn-missing",
        "tensorflow/tensorflow#60854",
        cudnn_missing,
        "CUDA libraries",
        "libcudnn.so.* (cudnn) is missing",
        'make env EXTRAS="jax gpu"',
        1,
    ),
    Mode(
        "tensorflow-without-its-cuda-wheels",
        "tensorflow/tensorflow#63362",
        tensorflow_without_cuda_wheels,
        "CUDA libraries",
        "the wheel nvidia-cublas-cu12 is not installed",
        'make env EXTRAS="jax gpu"',
        1,
    ),
    Mode(
        "older-cudnn-shadows-the-wheel",
        "tensorflow/tensorflow#39842",
        older_cudnn_shadows,
        "CUDA libraries",
        "an older libcudnn.so.9 9.1.0 in LD_LIBRARY_PATH",
        "unset LD_LIBRARY_PATH",
        1,
    ),
    Mode(
        "memory-held-by-another-process",
        "tensorflow/tensorflow#25160",
        memory_held,
        "memory",
        "held by PID 4242 python3",
        "stop those processes",
        1,
    ),
    Mode(
        "cudnn-fails-to-initialize-memory-held",
        "tensorflow/tensorflow#38929",
        cudnn_init_fails_while_memory_is_held,
        "compute",
        "GPU memory is held by other processes: PID 4242",
        "TF_FORCE_GPU_ALLOW_GROWTH=true",
        1,
        (),
    ),
    Mode(
        "cc-12-with-tensorflow-2.21",
        "tensorflow/tensorflow#99592, tensorflow/tensorflow#101746",
        rtx_5090,
        "framework",
        "carry no code for compute capability 12.0",
        "nvcr.io/nvidia/tensorflow",
        1,
    ),
    Mode(
        "wsl2-gpu-through-dxg",
        "microsoft/WSL#6014, tensorflow/tensorflow#63341",
        wsl2,
        "-",
        "WSL2: the GPU is served by the Windows driver through /dev/dxg",
        "",
        0,
    ),
    Mode(
        "wsl2-library-path",
        "bitsandbytes-foundation/bitsandbytes#337",
        wsl2_without_library_path,
        "NVML",
        "/usr/lib/wsl/lib/libnvidia-ml.so.1) is not on the loader path",
        "ld.wsl.conf",
        1,
    ),
    Mode(
        "jax-cpu-only-install",
        "jax-ml/jax#17624",
        jax_cpu_only,
        "framework",
        "jax 0.10.2 has no CUDA plugin",
        'make env EXTRAS="jax gpu"',
        1,
    ),
    Mode(
        "jax-cuda13-plugin-on-a-cuda-12-driver",
        "jax-ml/jax#11967",
        jax_cuda13_plugin,
        "CUDA driver",
        "the build needs CUDA 13.x",
        "nvidia_driver_branch=580",
        1,
    ),
    Mode(
        "jax-reason-kept",
        "jax-ml/jax#29068",
        jax_reason,
        "framework",
        "Unable to initialize backend 'cuda': FAILED_PRECONDITION: No visible GPU devices.",
        'make env EXTRAS="jax gpu"',
        1,
    ),
    Mode(
        "tensorflow-cannot-dlopen",
        "tensorflow/tensorflow#60646",
        tensorflow_cannot_dlopen,
        "framework",
        "Cannot dlopen some GPU libraries",
        'make env EXTRAS="jax gpu"',
        1,
    ),
    Mode(
        "pcie-link-below-maximum",
        "janhq/jan#183",
        lambda m: _nvml(m, nvmlDeviceGetCurrPcieLinkWidth=8),
        "-",
        "PCIe link width x8 of x16",
        "full-width slot",
        0,
    ),
    Mode(
        "throttling-gpu",
        "leptonai/gpud#330",
        lambda m: _nvml(m, events=[pynvml.nvmlClocksEventReasonHwSlowdown]),
        "health",
        "clocks held down by hw_slowdown",
        "check fans, airflow and the power cables",
        1,
    ),
    Mode(
        "uncorrectable-ecc-errors",
        "NVIDIA/k8s-device-plugin#243",
        lambda m: _nvml(m, nvmlDeviceGetTotalEccErrors=2),
        "health",
        "2 uncorrected ECC errors",
        "reset the GPU or reboot",
        1,
    ),
    Mode(
        "row-remapping-pending",
        "leptonai/gpud#80",
        lambda m: _nvml(m, nvmlDeviceGetRemappedRows=(0, 4, 1, 0)),
        "health",
        "row remapping pending",
        "nvidia-smi -r",
        1,
    ),
]


def _run(m: Machine, argv: tuple[str, ...], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(list(argv), boundary=m.boundary())
    return code, capsys.readouterr().out


def test_the_table_is_big_enough_and_cites_its_sources() -> None:
    assert len(MODES) >= 25 and len({m.id for m in MODES}) == len(MODES)
    for mode in MODES:
        assert all("/" in part and "#" in part for part in mode.source.split(", ")), mode.id


@pytest.mark.parametrize("mode", MODES, ids=[m.id for m in MODES])
def test_fault_is_named_with_its_layer_cause_and_remedy(mode: Mode, tmp_path: Path, capsys) -> None:
    machine = Machine.healthy_h100(tmp_path)
    mode.stage(machine)
    code, out = _run(machine, mode.argv, capsys)
    flat = " ".join(out.split())  # the screen wraps long lines
    assert code == mode.exit, out
    if mode.layer == "-":
        assert "verdict: OK" in out, out
    else:
        assert f"verdict: BROKEN at the {mode.layer} layer" in out, out
        row = next(line for line in out.splitlines() if line.startswith(f"  {mode.layer} "))
        assert "BROKEN" in row, out
    assert mode.cause in flat, out
    assert mode.remedy in flat, out


def test_healthy_h100_is_ok(tmp_path: Path, capsys) -> None:
    code, out = _run(Machine.healthy_h100(tmp_path), ("--no-compute",), capsys)
    assert code == 0 and "verdict: OK" in out and "BROKEN" not in out, out
    assert "test kernel OK" in " ".join(
        out.split()
    )  # the H100 runs TF 2.21's compute_90 PTX, and the JIT works


def test_no_gpu_is_not_a_failure_unless_required(tmp_path: Path, capsys, monkeypatch) -> None:
    m = Machine(tmp_path)
    m.pci_device("0000:00:02.0", "0x8086", "0x030000", "a780", "i915")  # an Intel iGPU only
    code, out = _run(m, (), capsys)
    assert code == 0 and "verdict: no NVIDIA GPU found" in " ".join(out.split()), out
    assert "no PCI device of vendor 0x10de" in out
    monkeypatch.setenv("REQUIRE_GPU", "1")
    code, out = _run(m, (), capsys)
    assert code == 1


def test_layers_above_the_broken_one_are_not_checked(tmp_path: Path, capsys) -> None:
    machine = Machine.healthy_h100(tmp_path)
    uvm_missing(machine)
    code, out = _run(machine, ("--no-compute",), capsys)
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ")}
    assert code == 1 and "not checked" in rows["NVML"] and "not checked" in rows["health"], out
    assert machine.nvml.calls == []  # NVML was never touched


def test_a_probe_that_raises_is_a_broken_layer_not_a_crash(tmp_path: Path, capsys) -> None:
    machine = Machine.healthy_h100(tmp_path)

    def exploding_nvml() -> object:
        raise RuntimeError("binding exploded")

    machine.nvml = types.SimpleNamespace(nvmlInit=exploding_nvml)
    code, out = _run(machine, ("--no-compute",), capsys)
    assert code == 1 and "BROKEN at the NVML layer" in out and "binding exploded" in out, out
