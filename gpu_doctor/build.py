"""What the framework build was compiled for: read from the installed packages' metadata and rules.toml,
without importing the framework (``installed_build``), or asked of the imported framework
(``framework_build_info``).
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gpu_doctor import environment, rules

_REQUIREMENT = re.compile(r"^\s*(nvidia-[A-Za-z0-9_.-]+)\s*(?:\[[^\]]*\])?\s*([^;]*)(?:;(.*))?$")


@dataclass
class Requirement:
    package: str  # nvidia-cudnn-cu12
    min_version: str | None  # "9.3.0.75" (from >= or ==)
    installed: str | None  # the installed version, None when missing


@dataclass
class Build:
    framework: str
    version: str | None = None  # installed version; None: not installed
    gpu_capable: bool | None = None  # False: a CPU-only build; None: cannot tell
    cpu_only_reason: str | None = None
    cuda: str | None = None  # CUDA the build was compiled with (or the major its CUDA plugin targets)
    cudnn: str | None = None
    archs: list[str] = field(default_factory=list)  # sm_/compute_ it carries; [] unknown
    requirements: list[Requirement] = field(default_factory=list)  # the nvidia-* wheels it needs
    install_gpu: str = ""  # the command that installs its GPU libraries here (gpu_doctor.environment)
    source: str = ""

    def as_dict(self) -> dict[str, Any]:
        return {
            "framework": self.framework,
            "version": self.version,
            "gpu_capable": self.gpu_capable,
            "cuda": self.cuda,
            "cudnn": self.cudnn,
            "archs": self.archs,
            "source": self.source,
            "requirements": {
                r.package: {"needs": r.min_version, "installed": r.installed} for r in self.requirements
            },
        }


def _requirements(metadata: Any, package: str, extra: str) -> list[Requirement]:
    found = []
    for line in metadata.requires(package):
        m = _REQUIREMENT.match(line)
        if not m:
            continue
        name, spec, marker = m.group(1), m.group(2), m.group(3) or ""
        extra_in_marker = re.search(r"""extra\s*==\s*["']([^"']+)["']""", marker)
        if (extra_in_marker.group(1) if extra_in_marker else "") != extra:
            continue
        low = re.search(r"(?:>=|==|~=)\s*([\w.]+)", spec)
        found.append(Requirement(name, low.group(1) if low else None, metadata.version(name)))
    return found


def installed_build(
    framework: str, metadata: Any, prefix: Path | None = None, env: Mapping[str, str] | None = None
) -> Build:
    """The build facts of the installed ``framework`` (tensorflow, jax, torch): metadata and rules only.
    ``prefix`` and ``env``: the Python environment it is installed in (default: this one), which decides the
    command that installs its GPU libraries (gpu_doctor.environment)."""
    entry = rules.framework_rules(framework)
    build = Build(framework)
    if framework == "tensorflow":
        build.version = metadata.version("tensorflow")
        if build.version is None and metadata.version("tensorflow-cpu"):
            build.version, build.gpu_capable = metadata.version("tensorflow-cpu"), False
            build.cpu_only_reason = "tensorflow-cpu is installed: a CPU-only build"
        entry = rules.framework_rules("tensorflow", build.version)
        build.cuda, build.cudnn, build.archs = (
            entry.get("cuda"),
            entry.get("cudnn"),
            list(entry.get("archs", [])),
        )
        build.source = (
            f'rules.toml [frameworks.tensorflow."{rules.major_minor(build.version)}"]' if entry else ""
        )
        if build.version and build.gpu_capable is None:
            build.gpu_capable = (
                True  # TensorFlow's Linux wheel is a CUDA build; its libraries come from [and-cuda]
            )
            build.requirements = _requirements(metadata, "tensorflow", entry.get("cuda_extra", "and-cuda"))
    elif framework == "jax":
        build.version = metadata.version("jax")
        plugin = next((p for p in entry["plugins"] if metadata.version(p)), None)
        if build.version and plugin is None:
            build.gpu_capable = False
            plugins = " or ".join(entry["plugins"])
            build.cpu_only_reason = f"jax {build.version} has no CUDA plugin ({plugins}): a CPU-only install"
        elif plugin:
            build.gpu_capable, build.source = True, f"{plugin} {metadata.version(plugin)}"
            build.requirements = _requirements(metadata, plugin, entry["cuda_extra"])
            build.cuda = _runtime_cuda(build.requirements) or re.search(r"cuda(\d+)", plugin).group(1)
    elif framework == "torch":
        build.version = metadata.version("torch")
        if build.version:
            build.requirements = _requirements(metadata, "torch", entry.get("cuda_extra", ""))
            local = re.search(r"\+cu(\d+)(\d)$", build.version)
            if build.version.endswith("+cpu"):
                build.gpu_capable, build.cpu_only_reason = (
                    False,
                    f"torch {build.version} is the CPU-only build",
                )
            elif local or build.requirements:
                build.gpu_capable = True
                build.cuda = (
                    f"{local.group(1)}.{local.group(2)}" if local else _runtime_cuda(build.requirements)
                )
            build.source = f"torch {build.version} metadata"
    build.install_gpu = environment.install_gpu(
        framework, build.version, prefix or Path(sys.prefix), os.environ if env is None else env
    )
    return build


def _runtime_cuda(requirements: list[Requirement]) -> str | None:
    for r in requirements:
        if r.package.startswith("nvidia-cuda-runtime") and r.min_version:
            return rules.major_minor(r.min_version)
    return None


def framework_build_info(framework: str, import_module: Any) -> dict[str, Any] | None:
    """CUDA/cuDNN versions and GPU architectures as the imported framework reports them (or None)."""
    if framework == "tensorflow":
        tf = import_module("tensorflow")
        info = tf.sysconfig.get_build_info()
        if info.get("is_cuda_build"):
            return {
                "source": f"tensorflow {tf.__version__}",
                "cuda_version": info.get("cuda_version"),
                "cudnn_version": info.get("cudnn_version"),
                "archs": list(info.get("cuda_compute_capabilities", [])),
            }
        return None
    if framework == "jax":
        jax = import_module("jax")
        try:  # present only with the CUDA plugin installed; a private module, so read it defensively
            cuda_versions = import_module("jax._src.lib").cuda_versions
        except (ImportError, AttributeError):
            cuda_versions = None
        runtime = getattr(cuda_versions, "cuda_runtime_get_version", None)
        if runtime is None:
            return None
        cudnn = getattr(cuda_versions, "cudnn_get_version", None)
        return {
            "source": f"jax {jax.__version__} (the CUDA runtime it loaded)",
            "cuda_version": rules.cuda_from_int(runtime()),
            "cudnn_version": str(cudnn()) if cudnn else None,
            "archs": [],  # jaxlib does not list the architectures it was built for
        }
    if framework == "torch":
        torch = import_module("torch")
        if torch.version.cuda:
            return {
                "source": f"torch {torch.__version__}",
                "cuda_version": torch.version.cuda,
                "cudnn_version": str(torch.backends.cudnn.version()),
                "archs": torch.cuda.get_arch_list(),
            }
    return None


def gpu_capabilities(diagnosis: dict[str, Any]) -> list[str]:
    """Each GPU's compute capability ("12.0"), from NVML or the CUDA driver, in a diagnosis's to_dict()."""
    found = [g.get("compute_capability") for g in (diagnosis.get("nvml") or {}).get("gpus", [])]
    for layer in diagnosis.get("layers", []):
        if layer.get("name") == "cuda_driver":
            found += [d.get("compute_capability") for d in (layer.get("facts") or {}).get("devices", [])]
    return sorted({c for c in found if isinstance(c, str) and c[:1].isdigit()})


def gpu_backend(
    requested: str | None, metadata: Any, capabilities: list[str]
) -> tuple[str | None, str | None]:
    """The Keras backend for a GPU run, and why when it is not the one asked for: the user's KERAS_BACKEND
    stands; otherwise TensorFlow, unless its build is reported broken on a GPU here (compute capability 12.x,
    10.x: rules.toml [[known_broken]]) and the lock's JAX with its CUDA plugin is installed: then JAX."""
    if requested:
        return requested, None
    tf = installed_build("tensorflow", metadata)
    broken = [
        cc for cc in capabilities if tf.version and rules.known_broken("tensorflow", tf.version, cc, tf.archs)
    ]
    jax = installed_build("jax", metadata)
    if not broken or not jax.gpu_capable:
        return None, None  # the default; the doctor's framework layer says why a broken build fails
    return "jax", (
        f"TensorFlow {tf.version}'s wheels cannot run on compute capability {', '.join(broken)} "
        f"(gpu_doctor/rules.toml [[known_broken]]): the GPU checks and workloads run on JAX {jax.version} "
        f"({jax.source}) from uv.lock instead"
    )
