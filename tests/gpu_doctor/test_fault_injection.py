"""Fault injection: each failure mode users report, staged at the operating-system boundary only (a fake PCI
tree, fake /proc and /dev entries, the kernel log, fake NVML and libcuda return codes and hangs, environment
variables, a library path with a missing or older library, a stand-in framework imported by the doctor's real
child process), then diagnosed by the real probing code through the real CLI (`python -m gpu_doctor`'s main).
Each case asserts the layer, the cause, the remedy and the exit code, and cites the public issue it comes
from."""

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
    m.framework(
        "tensorflow",
        gpus=["/physical_device:GPU:0"],
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
    m.framework(
        "jax",
        error="Unable to initialize backend 'cuda': FAILED_PRECONDITION: No visible GPU devices. (you may "
        "need to uninstall the failing plugin package, or set JAX_PLATFORMS=cpu to skip this backend.)",
    )


def tensorflow_cannot_dlopen(m: Machine) -> None:
    # A W-level line, as TensorFlow 2.21 logs it: dropped at TF_CPP_MIN_LOG_LEVEL=2 (test_framework_words.py).
    m.framework(
        "tensorflow",
        gpus=[],
        log=[
            "W0000 00:00:1753232013.685876   24341 gpu_device.cc:2344] Cannot dlopen some GPU libraries. "
            "Please make sure the missing libraries mentioned above are installed properly if you would like "
            "to use GPU. Skipping registering GPU devices..."
        ],
    )


# --- 2025-2026: Blackwell, CUDA 13, open kernel modules, hangs, Xid, containers -----------------------------
def _one_gpu(m: Machine, name: str, pci_id: str, cc: tuple[int, int], driver: str = "580.65.06") -> None:
    """The staged GPU replaced by another model, on a driver of branch 580 (CUDA 13.0)."""
    m.write("sys/bus/pci/devices/0000:01:00.0/device", f"0x{pci_id}\n")
    _nvml(m, nvmlDeviceGetName=name, nvmlDeviceGetCudaComputeCapability=cc, nvmlSystemGetDriverVersion=driver,
          nvmlSystemGetCudaDriverVersion=13000)  # fmt: skip
    m.cuda = FakeCuda(driver=13000, devices=[(name, cc)])


def b200(m: Machine) -> None:
    _one_gpu(m, "NVIDIA B200", "2901", (10, 0))


def jax_sm107_xla_abort(m: Machine) -> None:
    """JAX's CUDA 12 wheels on an sm_107 GPU: XLA's LLVM refuses the target and aborts the process."""
    _one_gpu(m, "NVIDIA RTX PRO Thor", "2c01", (10, 7))
    m.env["KERAS_BACKEND"] = "jax"
    m.metadata.versions.update({"jax": "0.11.1", "jaxlib": "0.11.1", "jax-cuda12-plugin": "0.11.1"})
    m.framework(
        "jax",
        gpus=["cuda:0"],
        abort="LLVM Fatal Error while compiling target binary for module: jit_iota\n"
        "Reason: PTX version 8.8 does not support target 'sm_107a'.\n"
        "Minimum required PTX version is 9.4.",
    )


def cuda13_jax_on_v100(m: Machine) -> None:
    _one_gpu(m, "Tesla V100-PCIE-32GB", "1db4", (7, 0), driver="580.126.09")
    m.env["KERAS_BACKEND"] = "jax"
    m.metadata.versions.update({"jax": "0.10.2", "jaxlib": "0.10.2", "jax-cuda13-plugin": "0.10.2"})


def torch_cu126_on_rtx_5090(m: Machine) -> None:
    rtx_5090(m)
    m.env["KERAS_BACKEND"] = "torch"
    m.metadata.versions["torch"] = "2.7.0+cu126"


def driver_595_on_pascal(m: Machine) -> None:
    m.load_module("595.58.03", open_flavour=False)
    m.bind("0000:01:00.0", None)
    m.write("sys/bus/pci/devices/0000:01:00.0/device", "0x1c81\n")  # GTX 1050


def open_module_on_pascal(m: Machine) -> None:
    m.load_module("570.133.20", open_flavour=True)
    m.bind("0000:01:00.0", None)
    m.write("sys/bus/pci/devices/0000:01:00.0/device", "0x1b80\n")  # GTX 1080


def open_module_hmm(m: Machine) -> None:
    m.cuda = FakeCuda(init_rc=3)  # healthy_h100 runs the open flavour; nvidia_uvm's HMM is on by default


def fabric_manager(m: Machine) -> None:
    m.write("dev/nvidia-nvswitch0")
    m.cuda = FakeCuda(init_rc=802)


def hmm_802_two_rtx_5090(m: Machine) -> None:
    m.cuda = FakeCuda(init_rc=802)  # no NVSwitch here


def nvml_hangs(m: Machine) -> None:
    _nvml(m, hang={"nvmlDeviceGetMemoryInfo": 0})
    m.timeouts.update(nvml_gpu_s=0.3)


def cuinit_hangs(m: Machine) -> None:
    m.cuda = FakeCuda(hang=("cuInit",))
    m.timeouts.update(cuda_start_s=0.3)


def gsp_hang_with_xid_119(m: Machine) -> None:
    """cuInit hangs and the kernel log says why: the health layer's Xid 119 is the first cause."""
    cuinit_hangs(m)
    m.kernel_log("NVRM: Xid (PCI:0000:01:00): 119, pid=4242, name=python3, Timeout waiting for RPC from GSP!")


def xid_94(m: Machine) -> None:
    m.kernel_log("NVRM: Xid (PCI:0000:01:00): 94, pid=1234, name=python3, Contained ECC error")


def xid_13(m: Machine) -> None:
    m.kernel_log("NVRM: Xid (PCI:0000:01:00): 13, pid=1234, name=python3, Graphics Exception: ESR 0x50")


def x8_slot(m: Machine) -> None:
    _nvml(m, nvmlDeviceGetCurrPcieLinkWidth=8, nvmlDeviceGetMaxPcieLinkWidth=8)  # the slot's limit


def libdevice_missing(m: Machine) -> None:
    m.framework(
        "tensorflow",
        gpus=["/physical_device:GPU:0"],
        at="xla",
        compute_log=[
            "W0000 00:00:1753232013.685876   24341 nvptx_helper.cc:56] Can't find libdevice directory "
            "${CUDA_DIR}/nvvm/libdevice. This may result in compilation or runtime failures"
        ],
        fail="INTERNAL: libdevice not found at ./libdevice.10.bc [Op:__inference_<lambda>_12]",
    )


def ecc_breaks_compute(m: Machine) -> None:
    _nvml(m, nvmlDeviceGetTotalEccErrors=1)
    m.framework("tensorflow", gpus=["/physical_device:GPU:0"],
                fail="CUDA_ERROR_ECC_UNCORRECTABLE: uncorrectable ECC error encountered")  # fmt: skip


def docker_without_toolkit(m: Machine) -> None:
    m.write("usr/bin/docker")


def stale_cdi(m: Machine) -> None:
    m.write("usr/bin/docker")
    m.write("usr/bin/nvidia-container-runtime-hook")
    m.write(
        "etc/cdi/nvidia.yaml",
        "cdiVersion: 0.5.0\nkind: nvidia.com/gpu\ncontainerEdits:\n  mounts:\n"
        "  - hostPath: /usr/lib/x86_64-linux-gnu/libcuda.so.550.54.15\n",
    )


def visible_uuid_typo(m: Machine) -> None:
    m.env["CUDA_VISIBLE_DEVICES"] = "GPU-deadbeef"


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
    # --- from public issues of 2025-2026 ------------------------------------------------------------------
    Mode(
        "b200-with-tensorflow-2.21",
        "tensorflow/tensorflow#111958, openxla/xla#47982",
        b200,
        "framework",
        "no code for compute capability 10.0 (data-center Blackwell)",
        "nvcr.io/nvidia/tensorflow",
        1,
    ),
    Mode(
        "xla-aborts-the-framework-sm107",
        "openxla/xla#47982, tensorflow/tensorflow#111958",
        jax_sm107_xla_abort,
        "compute",
        "was killed by SIGABRT while it computed on GPU 0 (0000:01:00.0",
        "KERAS_BACKEND=jax with JAX's CUDA plugin",
        1,
        (),
    ),
    Mode(
        "cuda13-jax-on-v100",
        "mudler/LocalAI#9948, JuliaGPU/CUDA.jl#3079",
        cuda13_jax_on_v100,
        "framework",
        "CUDA 13 removed compute capability < 7.5",
        "KERAS_BACKEND=tensorflow",
        1,
    ),
    Mode(
        "torch-cu126-on-rtx-5090",
        "pytorch/pytorch#167244, pytorch/pytorch#150733",
        torch_cu126_on_rtx_5090,
        "framework",
        "torch 2.7.0+cu126 was built with CUDA 12.6",
        "CUDA 12.8 or newer",
        1,
    ),
    Mode(
        "driver-595-ignores-pascal",
        "NixOS/nixos-hardware#1880, NixOS/nixos-hardware#1828",
        driver_595_on_pascal,
        "kernel module",
        "driver 595.58.03 no longer supports it: branch 580 is the last",
        "nvidia_driver_branch=580",
        1,
    ),
    Mode(
        "open-module-on-pascal",
        "negativo17/nvidia-driver#158, void-linux/void-packages#56685",
        open_module_on_pascal,
        "kernel module",
        "the open kernel modules (loaded: 570.133.20 open) cannot drive it",
        "instead of nvidia-driver-570-open",
        1,
    ),
    Mode(
        "open-module-hmm-cuinit-3",
        "NVIDIA/open-gpu-kernel-modules#947, NVIDIA/open-gpu-kernel-modules#901, ollama/ollama#11593",
        open_module_hmm,
        "CUDA driver",
        "nvidia_uvm has HMM on",
        "uvm_disable_hmm=1",
        1,
    ),
    Mode(
        "fabric-manager-not-running-802",
        "jax-ml/jax#34049, huggingface/huggingface_hub#4134, pytorch/pytorch#35710",
        fabric_manager,
        "CUDA driver",
        "Fabric Manager is not running",
        "systemctl enable --now nvidia-fabricmanager",
        1,
    ),
    Mode(
        "802-without-nvswitch-hmm",
        "wilicc/gpu-burn#133, pytorch/pytorch#159207",
        hmm_802_two_rtx_5090,
        "CUDA driver",
        "there is no NVSwitch here",
        "uvm_disable_hmm=1",
        1,
    ),
    Mode(
        "gpu-does-not-answer-nvml",
        "NVIDIA/open-gpu-kernel-modules#446, NVIDIA/NVSentinel#1748",
        nvml_hangs,
        "NVML",
        "GPU 0 did not answer NVML within 0.3 s (in nvmlDeviceGetMemoryInfo): a firmware (GSP) hang?",
        "nvidia-bug-report.sh",
        1,
    ),
    Mode(
        "cuinit-does-not-answer",
        "NVIDIA/open-gpu-kernel-modules#446",
        cuinit_hangs,
        "CUDA driver",
        "cuInit did not answer the CUDA driver within 0.3 s",
        "nvidia-bug-report.sh",
        1,
    ),
    Mode(
        "gsp-hang-xid-119-health-wins",
        "NVIDIA/open-gpu-kernel-modules#446, leptonai/gpud#1174",
        gsp_hang_with_xid_119,
        "health",
        "Xid 119 x1 (the GPU's firmware (GSP) did not answer an RPC in time) although NVML still answers",
        "nvidia-bug-report.sh",
        1,
    ),
    Mode(
        "xid-94-while-nvml-answers",
        "leptonai/gpud#1174, utkuozdemir/nvidia_gpu_exporter#406",
        xid_94,
        "health",
        "the kernel log has Xid 94 x1 (contained ECC error",
        "nvidia-smi -r -i 0",
        1,
    ),
    Mode(
        "xid-13-application-fault",
        "NVIDIA/open-gpu-kernel-modules#1150, leptonai/gpud#1174",
        xid_13,
        "-",
        "the kernel log has Xid 13 x1 (graphics engine exception",
        "",
        0,
    ),
    Mode(
        "gpu-in-an-x8-slot",
        "nokyan/resources#512, noonghunna/club-3090#1098",
        x8_slot,
        "-",
        "PCIe link x8: the GPU is built for x16, the slot gives x8",
        "full x16 slot",
        0,
    ),
    Mode(
        "libdevice-missing-for-xla",
        "tensorflow/tensorflow#58681, wutzebaer/tensorflow-5090#3",
        libdevice_missing,
        "compute",
        "XLA cannot find the CUDA compiler parts it needs (ptxas, libdevice)",
        "nvidia-cuda-nvcc",
        1,
        (),
    ),
    Mode(
        "ecc-error-breaks-compute-health-wins",
        "NVIDIA/k8s-device-plugin#243, NVIDIA/NVSentinel#1748",
        ecc_breaks_compute,
        "health",
        "1 uncorrected ECC errors since boot",
        "reset the GPU or reboot",
        1,
        (),
    ),
    Mode(
        "docker-without-container-toolkit",
        "NVIDIA/nvidia-container-toolkit#871, NVIDIA/nvidia-container-toolkit#854",
        docker_without_toolkit,
        "-",
        "Docker is installed but the NVIDIA Container Toolkit is not",
        "nvidia-ctk runtime configure --runtime=docker",
        0,
    ),
    Mode(
        "cdi-spec-stale-after-driver-upgrade",
        "podman-container-tools/podman#26233, NixOS/nixpkgs#420638",
        stale_cdi,
        "-",
        "names driver 550.54.15 but the loaded driver is 570.133.20",
        "nvidia-ctk cdi generate --output=/etc/cdi/nvidia.yaml",
        0,
    ),
    Mode(
        "cuda-visible-devices-uuid-typo",
        "unslothai/unsloth#670, Project-HAMi/HAMi#320",
        visible_uuid_typo,
        "CUDA driver",
        "CUDA_VISIBLE_DEVICES='GPU-deadbeef' names no GPU UUID here",
        "nvidia-smi -L",
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
    try:
        code, out = _run(machine, mode.argv, capsys)
    finally:
        machine.release()  # a staged hang ends with the test
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
