"""The CUDA libraries layer: find each library the framework loads the way the framework's loader finds it,
load it, and compare the version it reports with the version the build asks for.

How each framework finds them (rules.toml [frameworks.*]: `dlopens`, `loader`, `preloads_from_wheels`):
TensorFlow dlopens each by soname from libtensorflow_framework.so.2, so the loader looks in LD_LIBRARY_PATH,
that file's RUNPATH ($ORIGIN), its cache and the system folders (gpu_doctor/loader.py), plus what the
project's loader hook preloaded from the wheels; JAX's plugin and PyTorch load the wheel files first.
So a library TensorFlow cannot find is BROKEN here, with its name, even when the wheel has it on disk.
"""

from __future__ import annotations

from ctypes import byref, c_int, c_size_t
from pathlib import Path
from typing import Any

from gpu_doctor import environment, loader, rules
from gpu_doctor.build import Requirement
from gpu_doctor.context import Context
from gpu_doctor.model import OK, Layer

_CUBLAS_PROPERTIES = (0, 1, 2)  # libraryPropertyType: MAJOR_VERSION, MINOR_VERSION, PATCH_LEVEL


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
    out = c_int()
    if function == "cudaRuntimeGetVersion":  # int*: 12050 = 12.5
        return rules.cuda_from_int(out.value) if fn(byref(out)) == 0 else None
    if function == "ncclGetVersion":  # int*: 22803 = 2.28.3 (NCCL >= 2.9)
        return (
            f"{out.value // 10000}.{(out.value % 10000) // 100}.{out.value % 100}"
            if fn(byref(out)) == 0
            else None
        )
    if function == "cublasGetProperty":  # (libraryPropertyType, int*) per part
        parts = []
        for prop in _CUBLAS_PROPERTIES:
            if fn(prop, byref(out)) != 0:
                return None
            parts.append(str(out.value))
        return ".".join(parts)
    return None


def needed_libraries(ctx: Context) -> list[tuple[str, dict[str, Any], Requirement]]:
    """(key, rules entry, requirement) of each library the framework loads from its nvidia-* wheels."""
    build = ctx.build
    wanted = rules.framework_rules(build.framework, build.version).get("dlopens")
    found = loader.libraries_of(build.requirements)
    return [(k, e, r) for k, e, r in found if wanted is None or k in wanted]


def hook_active(ctx: Context) -> bool:
    """The project's loader hook is installed in this environment (its wheel's files) and not turned off."""
    b = ctx.boundary
    files = b.metadata.files(environment.PROJECT)
    return any(f.name == loader.HOOK_FILE for f in files) and loader.hook_enabled(b.env)


class Finder:
    """Where the framework's loader finds a library: the search path of its dlopen, the wheels, the hook."""

    def __init__(self, ctx: Context) -> None:
        b, build = ctx.boundary, ctx.build
        self.ctx = ctx
        self.rules = rules.framework_rules(build.framework, build.version)
        caller = loader.framework_library(build, b.metadata)
        elf = b.elf(str(caller)) if caller else None
        self.caller = caller
        self.path = loader.search_path(str(caller) if caller else None, elf, b.env, b.ld_cache())
        self.preloads = bool(self.rules.get("preloads_from_wheels"))
        self.hook = hook_active(ctx)

    def locate(self, entry: dict[str, Any], req: Requirement) -> dict[str, Any]:
        b, stem = self.ctx.boundary, entry["stem"]
        wheel = loader.soname_in(b.metadata.files(req.package), stem) if req.installed else None
        found = {"path": None, "origin": None, "wheel": str(wheel) if wheel else None, "soname": None}
        if wheel is not None and self.preloads:
            by = f"{self.ctx.build.framework} loads it by path"
            return {**found, "path": str(wheel), "origin": f"wheel {req.package} {req.installed} ({by})",
                    "soname": wheel.name}  # fmt: skip
        names = [wheel.name] if wheel else self._candidates(stem)
        for soname in names:
            hit = self.path.find(soname, b.file_exists)
            if hit is not None:
                origin = hit[1]
                if wheel is not None and Path(hit[0]) == Path(str(wheel)):
                    origin = f"wheel {req.package} {req.installed}, through {hit[1]}"
                return {**found, "path": hit[0], "origin": origin, "soname": soname}
        if wheel is not None and self.hook:
            return {**found, "path": str(wheel), "soname": wheel.name,
                    "origin": f"wheel {req.package} {req.installed} (preloaded by the loader hook: not on "
                    f"{Path(self.caller).name if self.caller else 'the'} search path)"}  # fmt: skip
        return {**found, "soname": wheel.name if wheel else None}

    def _candidates(self, stem: str) -> list[str]:
        """Sonames ``stem``.N the search path offers when no wheel says which one (no wheel installed)."""
        names = {n for n in self.path.cache if loader.soname_in([Path(n)], stem)}
        for folder, _ in self.path.folders:
            names |= {p.name for p in Path(folder).glob(f"{stem}.*") if loader.soname_in([p], stem)}
        return sorted(names)


def _older(loaded: str | None, needed: str | None, depth: int) -> bool:
    a, b = rules.version_tuple(loaded), rules.version_tuple(needed)
    return a is not None and b is not None and a[:depth] < b[:depth]


def _unreachable(
    layer: Layer, ctx: Context, finder: Finder, key: str, where: dict, req: Requirement
) -> Layer:
    """The wheel has the library but the framework's loader does not look there (and no hook loads it)."""
    build, b = ctx.build, ctx.boundary
    caller = finder.caller.name if finder.caller else build.framework
    off = not loader.hook_enabled(b.env)
    return layer.broken(
        f"{where['soname']} ({key}) is not on {build.framework} {build.version}'s library search path "
        f"({finder.path.describe()}): {build.framework} fails to load it, although the wheel {req.package} "
        f"{req.installed} has it at {where['wheel']}"
        + (f" ({loader.HOOK_SWITCH}={b.env.get(loader.HOOK_SWITCH)} turned off the loader hook that preloads "
           "it)" if off else f" (the loader hook {loader.HOOK_FILE} that preloads it is not installed)"),
        f"unset {loader.HOOK_SWITCH}" if off else f"reinstall the environment: {build.install_gpu}",
        summary=f"{where['soname']} not found from {caller}",
    )  # fmt: skip


def libraries_layer(ctx: Context) -> Layer:
    layer, build, b = Layer("cuda_libraries"), ctx.build, ctx.boundary
    if b.env.get("LD_LIBRARY_PATH"):
        layer.notes.append(f"LD_LIBRARY_PATH={b.env['LD_LIBRARY_PATH']}")
    if not build.version or build.gpu_capable is False:
        layer.summary = "n/a: no CUDA build of the framework (see the framework layer)"
        return layer
    needs = needed_libraries(ctx)
    if not needs:
        layer.summary = f"n/a: {build.framework} {build.version} names no nvidia-* library wheels to check"
        return layer
    finder = Finder(ctx)
    layer.facts["search_path"] = [f"{folder} ({origin})" for folder, origin in finder.path.folders]
    layer.facts["loader_hook"] = finder.hook
    loaded = []
    for key, entry, req in needs:
        where = finder.locate(entry, req)
        layer.facts[key] = {
            "package": req.package,
            "needs": req.min_version,
            "installed": req.installed,
            **where,
        }
        if where["path"] is None and where["wheel"] is not None:
            return _unreachable(layer, ctx, finder, key, where, req)
        if where["path"] is None:
            return layer.broken(
                f"{entry['stem']}.* ({key}) is missing: the wheel {req.package} is not installed and "
                f"{build.framework}'s search path ({finder.path.describe()}) has no copy",
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
    hooked = [k for k, _, _ in needs if "loader hook" in (layer.facts[k]["origin"] or "")]
    how = f"as {build.framework} loads them" + (
        f"; {', '.join(hooked)} preloaded by the loader hook" if hooked else ""
    )
    layer.summary = f"{len(loaded)} libraries load ({how}): {', '.join(loaded)}"
    return layer
