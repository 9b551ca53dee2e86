"""The environment fingerprint written with every result and report: enough to reproduce and compare a run."""

from __future__ import annotations

import hashlib
import json
import os
import platform
import subprocess
import sys
from importlib import metadata
from pathlib import Path

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PACKAGES = (
    "tensorflow",
    "keras",
    "jax",
    "jaxlib",
    "torch",
    "numpy",
    "scikit-learn",
    "nvidia-ml-py",
    "jupyterlab",
)
# Inside the image, the build writes its manifest (lock hash, git revision, packages) here.
IMAGE_MANIFEST = Path("/etc/keras-workstation/manifest.json")


def environment_fingerprint(backend: str | None = None) -> dict:
    """Python, packages, lock hash, git revision, CPU, memory, GPU (through NVML), backend build info."""
    manifest = _image_manifest()
    return {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "packages": _package_versions(),
        "keras_backend": backend or os.environ.get("KERAS_BACKEND", "tensorflow"),
        "lock_sha256": lock_hash() or manifest.get("lock_sha256"),
        "git_revision": git_revision() or manifest.get("git_revision"),
        "image": {"digest": os.environ.get("KW_IMAGE_DIGEST"), **manifest} if manifest else None,
        "cpu": cpu_info(),
        "gpus": gpu_info(),
        "build": backend_build_info(backend),
    }


def _package_versions() -> dict:
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            versions[name] = None
    return versions


def lock_hash(lock: Path | None = None) -> str | None:
    """sha256 of uv.lock: the project's, or the copy an install put beside the environment."""
    candidates = [lock] if lock else [PROJECT_ROOT / "uv.lock", Path(sys.prefix).parent / "uv.lock"]
    for path in candidates:
        if path and path.is_file():
            return hashlib.sha256(path.read_bytes()).hexdigest()
    return None


def git_revision() -> str | None:
    if revision := os.environ.get("KW_GIT_REVISION"):
        return revision
    try:
        out = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
        dirty = subprocess.run(
            ["git", "-C", str(PROJECT_ROOT), "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            timeout=5,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def cpu_info() -> dict:
    model = platform.processor() or None
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory_gib = None
    try:
        pages = os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
        memory_gib = round(pages / 2**30, 1)
    except (ValueError, OSError):
        pass
    return {"model": model, "cores": os.cpu_count(), "memory_gib": memory_gib, "machine": platform.machine()}


def gpu_info() -> list[dict] | dict:
    """Each NVIDIA GPU's name, UUID, memory and driver through NVML, or why there are none."""
    try:
        import pynvml
    except ImportError:
        return {"error": "nvidia-ml-py is not installed"}
    try:
        pynvml.nvmlInit()
    except pynvml.NVMLError as exc:
        return {"error": f"NVML unavailable: {exc}"}
    try:
        driver = pynvml.nvmlSystemGetDriverVersion()
        gpus = []
        for i in range(pynvml.nvmlDeviceGetCount()):
            handle = pynvml.nvmlDeviceGetHandleByIndex(i)
            major, minor = pynvml.nvmlDeviceGetCudaComputeCapability(handle)
            gpus.append(
                {
                    "index": i,
                    "name": _text(pynvml.nvmlDeviceGetName(handle)),
                    "uuid": _text(pynvml.nvmlDeviceGetUUID(handle)),
                    "memory_gib": round(pynvml.nvmlDeviceGetMemoryInfo(handle).total / 2**30, 1),
                    "compute_capability": f"{major}.{minor}",
                    "driver": _text(driver),
                }
            )
        return gpus
    except pynvml.NVMLError as exc:
        return {"error": f"NVML query failed: {exc}"}
    finally:
        pynvml.nvmlShutdown()


def backend_build_info(backend: str | None = None) -> dict:
    """CUDA/cuDNN versions the installed framework was built with (TensorFlow), when it is importable."""
    backend = backend or os.environ.get("KERAS_BACKEND", "tensorflow")
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            info = tf.sysconfig.get_build_info()
            return {k: info.get(k) for k in ("cuda_version", "cudnn_version", "cuda_compute_capabilities")}
        if backend == "jax":
            import jax

            return {"jax_default_backend": jax.default_backend()}
        if backend == "torch":
            import torch

            return {"cuda_version": torch.version.cuda, "cudnn_version": torch.backends.cudnn.version()}
    except Exception as exc:
        return {"error": str(exc)}
    return {}


def _image_manifest() -> dict:
    try:
        return json.loads(IMAGE_MANIFEST.read_text())
    except (OSError, ValueError):
        return {}


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value
