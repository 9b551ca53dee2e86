"""Compatibility rules: driver vs the framework's CUDA build, compute capabilities, hostile env vars."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# DCGM's diagnostic (software plugin) fails when any of these is set: they inject profilers/debuggers
# into every CUDA program or change its behaviour on errors.
DCGM_BAD_ENV_VARS = (
    "NSIGHT_CUDA_DEBUGGER",
    "CUDA_INJECTION32_PATH",
    "CUDA_INJECTION64_PATH",
    "CUDA_AUTO_BOOST",
    "CUDA_ENABLE_COREDUMP_ON_EXCEPTION",
    "CUDA_COREDUMP_FILE",
    "CUDA_DEVICE_WAITS_ON_EXCEPTION",
    "CUDA_PROFILE",
    "COMPUTE_PROFILE",
    "OPENCL_PROFILE",
)


def parse_version(text: Any) -> tuple[int, ...] | None:
    if not isinstance(text, str):
        return None
    found = re.findall(r"\d+", text)
    return tuple(int(x) for x in found[:3]) if found else None


def driver_supports_build(cuda_driver: Any, cuda_build: Any) -> tuple[bool, str]:
    """Is a driver whose highest CUDA is ``cuda_driver`` (e.g. "12.4") new enough for ``cuda_build``?

    Within one major version CUDA has minor-version compatibility (runs, but PTX newer than the driver
    cannot be JIT-compiled), so an older minor passes with a note; an older major fails.
    """
    drv, build = parse_version(cuda_driver), parse_version(cuda_build)
    if drv is None or build is None:
        return True, f"n/a: cannot compare driver CUDA {cuda_driver!r} with build CUDA {cuda_build!r}"
    if drv[0] < build[0]:
        return False, (
            f"driver too old: it supports CUDA {cuda_driver}, the framework was built with "
            f"CUDA {cuda_build}; "
            f"install a driver for CUDA {build[0]}.x or newer"
        )
    if drv[:2] < build[:2]:
        return True, (
            f"driver CUDA {cuda_driver} < build CUDA {cuda_build}: runs through minor-version compatibility, "
            "but kernels shipped only as newer PTX cannot be JIT-compiled; a newer driver is better"
        )
    return True, f"driver CUDA {cuda_driver} >= build CUDA {cuda_build}"


def _arch(entry: str) -> tuple[str, int, int] | None:
    # "sm_86", "compute_90", "sm_90a" -> ("sm", 8, 6)
    m = re.fullmatch(r"(sm|compute)_(\d+)(\d)[a-z]?", entry.strip())
    return (m.group(1), int(m.group(2)), int(m.group(3))) if m else None


def compute_capability_supported(cc: Any, build_archs: list[str]) -> tuple[bool, str]:
    """Does the build contain code for compute capability ``cc`` ("8.6")?

    A cubin for sm_XY runs on the same major with minor >= Y; PTX compute_XY is JIT-compiled for any
    newer GPU (slow first start, works).
    """
    version = parse_version(cc)
    if version is None or len(version) < 2:
        return True, f"n/a: compute capability {cc!r}"
    major, minor = version[:2]
    archs = [a for a in (_arch(e) for e in build_archs) if a]
    if any(kind == "sm" and ma == major and mi <= minor for kind, ma, mi in archs):
        return True, f"compute capability {cc}: native code in the build ({', '.join(build_archs)})"
    if any(kind == "compute" and (ma, mi) <= (major, minor) for kind, ma, mi in archs):
        return True, f"compute capability {cc}: PTX JIT-compiled at first start (slow first run)"
    return False, (
        f"compute capability {cc} is not in the build ({', '.join(build_archs)}): "
        "this GPU is too old or too new for the installed framework wheel"
    )


def hostile_env_vars(environ: Mapping[str, str], gpu_present: bool) -> list[str]:
    """Environment variables that break or distort CUDA programs, each with why."""
    found = [f"{name}={environ[name]!r} (DCGM flags it)" for name in DCGM_BAD_ENV_VARS if name in environ]
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if gpu_present and visible is not None and visible.strip() in ("", "-1", "none", "NoDevFiles"):
        found.append(f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from CUDA programs")
    return found
