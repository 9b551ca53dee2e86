"""Start-up banner: is the GPU visible to TensorFlow in this container, and if not, why.

The checks go from the outside in: image variant, the driver the NVIDIA Container Toolkit injects
(device nodes, libcuda), the driver's CUDA version against the CUDA the image's TensorFlow was built for,
the GPU's compute capability against the architectures that TensorFlow build carries, then TensorFlow itself.
`diagnose()` is a pure function of those facts so that every branch is tested without a GPU.
"""

from __future__ import annotations

import ctypes
import glob
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

MANIFEST = Path(os.environ.get("KW_MANIFEST", "/opt/keras-workstation/manifest.json"))
PREFIX = "[keras-workstation]"
CUDA_RUNTIME_WHEEL = "nvidia-cuda-runtime-cu12"


@dataclass
class GpuFacts:
    """What the container can see of the GPU path; None where a probe could not tell."""

    variant: str = "gpu"
    image_cuda: str | None = None  # CUDA version the image's TensorFlow was built for, e.g. "12.5.1"
    image_archs: list[str] = field(default_factory=list)  # e.g. ["sm_60", ..., "compute_90"]
    device_nodes: bool = False  # /dev/nvidia0 ... present
    libcuda: bool = False  # the driver's libcuda.so.1 loads
    nvml_error: str | None = None
    driver_version: str | None = None
    driver_cuda: str | None = None  # newest CUDA the driver supports, e.g. "13.0"
    gpus: list[tuple[str, str]] = field(default_factory=list)  # (name, compute capability "9.0")
    tf_gpus: int | None = None  # GPUs TensorFlow lists; None when not asked


def _version_tuple(version: str) -> tuple[int, ...]:
    return tuple(int(part) for part in version.split(".")[:2])


def arch_supported(capability: str, archs: list[str]) -> bool:
    """True when a build carries SASS for this GPU (same major, minor <= its minor) or PTX it can JIT."""
    major, minor = _version_tuple(capability)
    for arch in archs:
        kind, _, digits = arch.partition("_")
        if not digits.isdigit() or len(digits) < 2:
            continue
        a_major, a_minor = int(digits[:-1]), int(digits[-1])
        if kind == "sm" and a_major == major and a_minor <= minor:
            return True
        if kind == "compute" and (a_major, a_minor) <= (major, minor):
            return True
    return False


def diagnose(facts: GpuFacts) -> tuple[bool, list[str]]:
    """Return (GPU usable, banner lines). Each 'no' names its cause and what to do."""
    if facts.variant != "gpu":
        return False, [
            f"GPU: not used: this is the {facts.variant.upper()} variant of the image (no CUDA libraries); "
            "build it with VARIANT=gpu for the GPU."
        ]
    if not facts.device_nodes and not facts.libcuda:
        return False, [
            "GPU: not visible: no NVIDIA device or driver library in the container. Start it with "
            "`--gpus all` (Docker) or `--device nvidia.com/gpu=all` (Podman, CDI), with the NVIDIA Container "
            "Toolkit installed on the host."
        ]
    if not facts.libcuda:
        return False, [
            "GPU: not visible: /dev/nvidia* exists but libcuda.so.1 does not load: the driver libraries "
            "were not injected (NVIDIA_DRIVER_CAPABILITIES must include compute)."
        ]
    if facts.nvml_error:
        return False, [f"GPU: the driver does not answer (NVML: {facts.nvml_error})."]
    if not facts.gpus:
        return False, ["GPU: the driver answers but lists no GPU (check NVIDIA_VISIBLE_DEVICES)."]
    lines = [
        f"driver {facts.driver_version} (CUDA {facts.driver_cuda}); image built for CUDA {facts.image_cuda}"
    ]
    if facts.driver_cuda and facts.image_cuda:
        driver, image = _version_tuple(facts.driver_cuda), _version_tuple(facts.image_cuda)
        if driver[0] < image[0]:
            return False, [
                *lines,
                f"GPU: not usable: the host driver is too old: it supports CUDA {facts.driver_cuda}, "
                f"the image needs CUDA {image[0]}.x. Update the NVIDIA driver on the host.",
            ]
        if driver < image:
            lines.append(
                f"warning: the driver's CUDA {facts.driver_cuda} is older than {facts.image_cuda}: it runs "
                "by minor-version compatibility, but PTX JIT compilation may fail. A newer driver is advised."
            )
    usable = []
    for name, capability in facts.gpus:
        if facts.image_archs and not arch_supported(capability, facts.image_archs):
            lines.append(
                f"GPU {name}: compute capability {capability} is not supported by this TensorFlow build "
                f"({', '.join(facts.image_archs)})."
            )
        else:
            usable.append(name)
            lines.append(f"GPU {name}: compute capability {capability}")
    if not usable:
        return False, [*lines, "GPU: not usable: unsupported compute capability."]
    if facts.tf_gpus == 0:
        return False, [*lines, "GPU: TensorFlow lists no GPU although the driver does: see its log above."]
    if facts.tf_gpus is not None:
        lines.append(f"GPU: visible to TensorFlow ({facts.tf_gpus} device(s)).")
    return True, lines


def probe(ask_tensorflow: bool = True) -> GpuFacts:
    """Gather the facts in this container. Imports TensorFlow only when the driver shows a usable GPU."""
    facts = GpuFacts(variant=os.environ.get("KW_VARIANT", "gpu"))
    try:
        manifest = json.loads(MANIFEST.read_text())
        build = manifest.get("tensorflow_build", {})
        # The CUDA runtime the image ships (the wheel) can be newer than the one TensorFlow was built with.
        facts.image_cuda = manifest.get("packages", {}).get(CUDA_RUNTIME_WHEEL) or build.get("cuda_version")
        facts.image_archs = build.get("cuda_compute_capabilities") or []
    except (OSError, ValueError):
        pass
    facts.device_nodes = bool(glob.glob("/dev/nvidia[0-9]*"))
    try:
        ctypes.CDLL("libcuda.so.1")
        facts.libcuda = True
    except OSError:
        facts.libcuda = False
    if facts.variant != "gpu" or not facts.libcuda:
        return facts
    try:
        import pynvml

        pynvml.nvmlInit()
        facts.driver_version = pynvml.nvmlSystemGetDriverVersion()
        cuda = pynvml.nvmlSystemGetCudaDriverVersion()
        facts.driver_cuda = f"{cuda // 1000}.{(cuda % 1000) // 10}"
        for index in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(index)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            facts.gpus.append((pynvml.nvmlDeviceGetName(handle), f"{major}.{minor}"))
    except Exception as exc:  # NVML raises its own error types; any failure is the diagnosis
        facts.nvml_error = str(exc) or type(exc).__name__
        return facts
    if ask_tensorflow and diagnose(facts)[0]:
        import tensorflow as tf

        facts.tf_gpus = len(tf.config.list_physical_devices("GPU"))
    return facts


def main() -> int:
    ok, lines = diagnose(probe(ask_tensorflow="--no-tensorflow" not in sys.argv))
    for line in lines:
        print(f"{PREFIX} {line}", flush=True)
    return 0 if ok or "--strict" not in sys.argv else 1


if __name__ == "__main__":
    raise SystemExit(main())
