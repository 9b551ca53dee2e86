"""The CUDA libraries layer: load each library the framework build needs, from where the framework would load
it, and compare the version loaded with the version the build asks for.

Search order, as the dynamic loader applies it to the frameworks' RUNPATH: LD_LIBRARY_PATH first (so a copy
there shadows the wheel's), then the nvidia-* wheel's own directory, then the loader's cache (ldconfig).
"""

from __future__ import annotations

import re
from ctypes import byref, c_int, c_size_t
from pathlib import Path
from typing import Any

from gpu_doctor import rules
from gpu_doctor.build import Requirement
from gpu_doctor.context import Context
from gpu_doctor.model import OK, Layer


def _base(package: str) -> str:
    return re.sub(r"-cu\d+$", "", package)  # nvidia-cudnn-cu12 -> nvidia-cudnn


def _soname_in(files: list[Path], stem: str) -> Path | None:
    pattern = re.compile(rf"^{re.escape(stem)}\.\d+$")
    return next((f for f in files if pattern.match(f.name)), None)


def read_version(handle: Any, function: str | None) -> str | None:
    """The version a loaded library reports about itself (rules.toml [libraries.*].version)."""
    if function is None:
        return None
    try:
        fn = getattr(handle, function)
    except AttributeError:
        return None
    if function == "cudnnGetVersion":  # size_t: major*10000 + minor*100 + patch (cuDNN 9)
        fn.restype = c_size_t
        v = int(fn())
        return (
            f"{v // 10000}.{(v % 10000) // 100}.{v % 100}"
            if v >= 10000
            else f"{v // 1000}.{(v % 1000) // 100}"
        )
    if function == "cudaRuntimeGetVersion":  # int*: 12050 = 12.5
        out = c_int()
        return rules.cuda_from_int(out.value) if fn(byref(out)) == 0 else None
    return None


def needed_libraries(requirements: list[Requirement]) -> list[tuple[str, dict[str, Any], Requirement]]:
    """(key, rules entry, requirement) for each library the build's nvidia-* wheels provide."""
    table = rules.rules()["libraries"]
    return [
        (key, entry, req)
        for req in requirements
        for key, entry in table.items()
        if entry["wheel"] == _base(req.package)
    ]


def _locate(ctx: Context, entry: dict[str, Any], req: Requirement) -> dict[str, Any]:
    b, stem = ctx.boundary, entry["stem"]
    wheel = _soname_in(b.metadata.files(req.package), stem) if req.installed else None
    soname = wheel.name if wheel else None
    shadow = None
    for d in b.ld_library_path():
        hit = (Path(d) / soname) if soname else _soname_in(sorted(Path(d).glob(f"{stem}.*")), stem)
        if hit is not None and hit.exists():
            shadow = hit
            break
    system = b.find_library(stem.removeprefix("lib").removesuffix(".so"))
    if shadow is not None:
        return {
            "path": str(shadow),
            "origin": f"LD_LIBRARY_PATH ({shadow.parent})",
            "wheel": str(wheel) if wheel else None,
        }
    if wheel is not None:
        return {"path": str(wheel), "origin": f"wheel {req.package} {req.installed}", "wheel": str(wheel)}
    if system:
        return {"path": system, "origin": "the system loader (ldconfig)", "wheel": None}
    return {"path": None, "origin": None, "wheel": None}


def _older(loaded: str | None, needed: str | None, depth: int) -> bool:
    a, b = rules.version_tuple(loaded), rules.version_tuple(needed)
    return a is not None and b is not None and a[:depth] < b[:depth]


def libraries_layer(ctx: Context) -> Layer:
    layer, build, b = Layer("cuda_libraries"), ctx.build, ctx.boundary
    if b.env.get("LD_LIBRARY_PATH"):
        layer.notes.append(f"LD_LIBRARY_PATH={b.env['LD_LIBRARY_PATH']}")
    if not build.version or build.gpu_capable is False:
        layer.summary = "n/a: no CUDA build of the framework (see the framework layer)"
        return layer
    needs = needed_libraries(build.requirements)
    if not needs:
        layer.summary = f"n/a: {build.framework} {build.version} names no nvidia-* library wheels to check"
        return layer
    loaded = []
    for key, entry, req in needs:
        where = _locate(ctx, entry, req)
        layer.facts[key] = {
            "package": req.package,
            "needs": req.min_version,
            "installed": req.installed,
            **where,
        }
        if where["path"] is None:
            return layer.broken(
                f"{entry['stem']}.* ({key}) is missing: the wheel {req.package} is not installed and the "
                "system has no copy",
                f"install the GPU build's libraries: {build.install_gpu}",
                summary=f"{key} missing",
            )
        try:
            handle = b.load_library(where["path"])
        except OSError as err:
            return layer.broken(
                f"{where['path']} ({key}, from {where['origin']}) does not load: {err}",
                f"reinstall it: {build.install_gpu}",
                summary=f"{key} does not load",
            )
        version = read_version(handle, entry.get("version"))
        layer.facts[key]["loaded_version"] = version
        depth = 1 if key == "cudart" else 2  # cuDNN needs major.minor >= the build's; the runtime its major
        if _older(version, req.min_version, depth) or (key == "cudart" and _older(version, build.cuda, 2)):
            needed = req.min_version if _older(version, req.min_version, depth) else build.cuda
            shadowing = where["origin"].startswith("LD_LIBRARY_PATH")
            cause = (
                f"an older {Path(where['path']).name} {version} in LD_LIBRARY_PATH "
                f"({Path(where['path']).parent}) shadows the wheel's ({req.package} {req.installed}); "
                f"{build.framework} {build.version} needs >= {needed}"
                if shadowing
                else f"{Path(where['path']).name} {version} from {where['origin']} is older than the "
                f"{needed} that {build.framework} {build.version} needs"
            )
            remedy = (
                f"unset LD_LIBRARY_PATH (or remove {Path(where['path']).parent} from it)"
                if shadowing
                else f"install the versions the build wants: {build.install_gpu}"
            )
            return layer.broken(cause, remedy, summary=f"{key} {version} too old")
        driver = ctx.cuda.get("driver_cuda")
        if key == "cudart" and version and driver and _older(driver, version, 1):
            return layer.broken(
                f"the CUDA runtime {version} needs a driver for CUDA {version.split('.')[0]}.x; the driver "
                f"supports CUDA {driver}",
                "upgrade the NVIDIA driver (make provision)",
            )
        loaded.append(f"{Path(where['path']).name}{' ' + version if version else ''}")
    layer.status = OK
    origins = sorted({layer.facts[k]["origin"].split(" (")[0].split(" nvidia")[0] for k, _, _ in needs})
    layer.summary = f"{len(loaded)} libraries load ({', '.join(origins)}): {', '.join(loaded)}"
    return layer
