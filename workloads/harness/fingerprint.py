"""The environment fingerprint written with every result and report: enough to reproduce and compare a run."""

from __future__ import annotations

import hashlib
import importlib
import json
import os
import platform
import re
import subprocess
import sys
from importlib import metadata
from pathlib import Path

from gpu_doctor.backends import active_backend
from gpu_doctor.safe_read import read_bytes, read_text

PROJECT_ROOT = Path(__file__).resolve().parents[2]
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
    """Python, OS, kernel, packages (the headline ones and every installed one), lock hash, git revision, CPU,
    memory, GPUs and their interconnect (through NVML), backend build info."""
    from gpu_doctor import nvml

    manifest = _image_manifest()
    picture = nvml.bounded_probe()  # a GPU that does not answer is a reason, never a hang
    return {
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "platform": platform.platform(),
        "os": os_release(),
        "kernel": platform.release(),
        "packages": _package_versions(),
        "installed": installed_distributions(),
        "keras_backend": backend or active_backend(),
        "lock_sha256": lock_hash() or manifest.get("lock_sha256"),
        "git_revision": git_revision() or manifest.get("git_revision"),
        "image": {"digest": os.environ.get("KW_IMAGE_DIGEST"), **manifest} if manifest else None,
        "cpu": cpu_info(),
        "gpus": gpu_info(picture),
        "gpu_topology": gpu_topology(picture),
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


def installed_distributions() -> dict[str, str]:
    """Every distribution in this environment, name -> version: how a fleet finds a drifted package."""
    found = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"]
        if name:
            found[re.sub(r"[-_.]+", "-", name).lower()] = dist.version
    return dict(sorted(found.items()))


def os_release() -> str | None:
    """The OS and its version (/etc/os-release PRETTY_NAME), e.g. "Debian GNU/Linux 12 (bookworm)"."""
    try:
        return platform.freedesktop_os_release().get("PRETTY_NAME")
    except OSError:
        return None


def lock_hash(lock: Path | None = None) -> str | None:
    """sha256 of uv.lock: the project's, or the copy an install put beside the environment."""
    candidates = [lock] if lock else [PROJECT_ROOT / "uv.lock", Path(sys.prefix).parent / "uv.lock"]
    for path in candidates:
        if path and path.is_file():
            try:
                return hashlib.sha256(read_bytes(path, max_bytes=64 << 20)).hexdigest()
            except OSError:
                return None
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
    try:  # bounded: a fingerprint never waits on a pseudo-file (gpu_doctor.safe_read)
        for line in read_text("/proc/cpuinfo").splitlines():
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


def gpu_info(picture: dict | None = None) -> list[dict] | dict:
    """Each NVIDIA GPU's name, UUID, PCI bus id, serial, memory and driver through NVML (gpu_doctor's
    `picture`, probed when not given), or why there are none."""
    if picture is None:
        from gpu_doctor import nvml

        picture = nvml.bounded_probe()
    if not picture["available"]:
        return {"error": picture["reason"]}
    return [
        {
            "index": g["index"],
            "name": g.get("name"),
            "uuid": g.get("uuid"),
            "pci_bus_id": g.get("pci_bus_id"),
            "serial": g.get("serial"),
            "memory_gib": round(g["memory_total_mib"] / 1024, 1)
            if isinstance(g.get("memory_total_mib"), int)
            else None,
            "compute_capability": g.get("compute_capability"),
            "driver": picture.get("driver_version"),
        }
        for g in picture["gpus"]
    ]


def gpu_topology(picture: dict) -> dict | None:
    """How the GPUs are joined, as stable facts (a link's current PCIe generation drops when idle, so only its
    maximum and its width): per pair nvidia-smi topo -m's word (NV18, PIX, SYS), per GPU its PCIe link and its
    NVLinks up. None without GPUs."""
    from gpu_doctor.topology import label

    topology = picture.get("topology") or {}
    if not picture.get("available"):
        return None
    nvlinks = {entry["index"]: entry["nvlink"] for entry in topology.get("gpus", [])}
    links = {}
    for g in picture["gpus"]:
        pcie = g.get("pcie", {})
        link = nvlinks.get(g["index"], {})
        links[str(g["index"])] = {
            "pcie": f"Gen{pcie.get('gen_max')} x{pcie.get('width_current')} (max x{pcie.get('width_max')})",
            "nvlinks_up": link.get("up"),
            "nvlink_version": link.get("version"),
        }
    pairs = {f"{p['gpus'][0]}-{p['gpus'][1]}": label(p) for p in topology.get("pairs", [])}
    return {"pairs": pairs, "gpus": links}


def backend_build_info(backend: str | None = None) -> dict:
    """CUDA/cuDNN versions and GPU architectures the framework was built with: asked of the framework when it
    is already imported (a workload run), else read from the installed metadata without importing it."""
    from gpu_doctor.build import framework_build_info, installed_build
    from gpu_doctor.system import InstalledMetadata

    backend = backend or active_backend()
    try:
        if backend in sys.modules:
            return framework_build_info(backend, importlib.import_module) or {"cuda_build": False}
        return installed_build(backend, InstalledMetadata()).as_dict()
    except Exception as exc:
        return {"error": str(exc)}


def _image_manifest() -> dict:
    try:
        manifest = json.loads(read_bytes(IMAGE_MANIFEST))
    except (OSError, ValueError, RecursionError):
        return {}
    return manifest if isinstance(manifest, dict) else {}
