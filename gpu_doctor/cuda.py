"""The CUDA driver API layer, through ctypes on libcuda.so.1: cuInit's error code, the driver's CUDA version
against the framework build, and (when a GPU needs the build's PTX) a one-line PTX kernel JIT-compiled by the
driver, which is exactly what that GPU will need."""

from __future__ import annotations

from ctypes import byref, c_char_p, c_int, c_void_p, create_string_buffer
from typing import Any

from gpu_doctor import rules
from gpu_doctor.context import Context
from gpu_doctor.model import OK, Layer

CC_MAJOR, CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR (cuda.h)
RECOMMENDED_BRANCH = rules.recommended_branch()  # rules.toml [driver], shared with Ansible's default


def upgrade_driver(min_driver: str | None = None) -> str:
    """The command that installs a driver of at least ``min_driver`` (a branch the rules know is enough)."""
    v = rules.version_tuple(min_driver)
    branch = RECOMMENDED_BRANCH if v is None else max(v[0], RECOMMENDED_BRANCH)
    return (
        f"make provision PROVISION_ARGS='-e nvidia_driver_branch={branch}' (or: sudo apt install "
        f"nvidia-driver-{branch}), then reboot"
    )


def _error(rc: int) -> dict[str, str]:
    return rules.cuda_error(rc)


def _libcuda_missing(ctx: Context, layer: Layer, err: OSError) -> Layer:
    if ctx.wsl:
        return layer.broken(
            f"libcuda.so.1 does not load in WSL2 ({err}): /usr/lib/wsl/lib is not on the loader path",
            "echo /usr/lib/wsl/lib | sudo tee /etc/ld.so.conf.d/ld.wsl.conf && sudo ldconfig",
        )
    if ctx.container:
        # Source: mudler/LocalAI#11973 (capabilities without compute: nvidia-smi works, libcuda.so.1 missing).
        return layer.broken(
            f"libcuda.so.1 was not mounted into this container ({err}): NVIDIA_DRIVER_CAPABILITIES lacks "
            "'compute'",
            "start it with -e NVIDIA_DRIVER_CAPABILITIES=compute,utility (the image's default) and --gpus "
            "all",
        )
    return layer.broken(
        f"libcuda.so.1 does not load ({err}): the driver's CUDA library is not installed",
        "install the driver's compute libraries (Ubuntu: sudo apt install libnvidia-compute-<branch>; or "
        "make provision)",
    )


def _init_failed(ctx: Context, layer: Layer, rc: int, devices: int | None) -> Layer:
    env = ctx.boundary.env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    nvml_count = len(ctx.nvml.get("gpus", []))
    if (rc == 100 or devices == 0) and visible is not None:
        if rules.hides_all_gpus(visible):
            # Source: tensorflow/tensorflow#26460 (CUDA_VISIBLE_DEVICES='' -> cuInit CUDA_ERROR_NO_DEVICE).
            return layer.broken(
                f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from CUDA programs",
                "unset CUDA_VISIBLE_DEVICES (or set it to 0)",
                summary="CUDA sees no GPU",
            )
        # Source: qubvel-org/segmentation_models.pytorch#289 (an index past the last GPU).
        return layer.broken(
            f"CUDA_VISIBLE_DEVICES={visible!r} names no GPU that exists (NVML sees {nvml_count}: indices "
            f"0..{max(nvml_count - 1, 0)})",
            "set CUDA_VISIBLE_DEVICES to existing indices or to UUIDs from nvidia-smi -L, or unset it",
            summary="CUDA sees no GPU",
        )
    if rc == 0 and devices == 0:
        return layer.broken(
            "the CUDA driver lists no device although NVML does",
            "nvidia-smi; check MIG and, in a container, --gpus all",
        )
    err = _error(rc)
    cause, remedy = f"cuInit: {err['name']} ({rc}): {err['cause']}", err["remedy"]
    if rc == 34:
        stubs = [d for d in ctx.boundary.ld_library_path() if "stub" in d]
        if stubs:
            cause += f" (LD_LIBRARY_PATH has {', '.join(stubs)})"
    if rc == 100 and ctx.container:
        remedy = "start the container with --gpus all (NVIDIA Container Toolkit)"
    return layer.broken(cause, remedy, summary=f"cuInit failed: {err['name']}")


def _devices(drv: Any, count: int) -> list[dict[str, Any]]:
    found = []
    for i in range(count):
        dev, major, minor = c_int(), c_int(), c_int()
        name = create_string_buffer(256)
        if drv.cuDeviceGet(byref(dev), i) != 0:
            continue
        drv.cuDeviceGetAttribute(byref(major), CC_MAJOR, dev)
        drv.cuDeviceGetAttribute(byref(minor), CC_MINOR, dev)
        drv.cuDeviceGetName(name, 256, dev)
        found.append(
            {
                "index": i,
                "name": name.value.decode(errors="replace"),
                "compute_capability": f"{major.value}.{minor.value}",
            }
        )
    return found


def ptx_kernel(isa: str, target: str) -> bytes:
    """The smallest valid PTX module of ISA ``isa`` for ``target`` (sm_90): what the driver must JIT."""
    return (
        f".version {isa}\n.target {target}\n.address_size 64\n\n.visible .entry "
        f"kw_doctor_probe()\n{{\n\tret;\n}}\n"
    ).encode()


def load_ptx(drv: Any, index: int, ptx: bytes) -> int:
    """JIT-compile ``ptx`` on GPU ``index`` in its primary context; returns the CUresult (0: it worked)."""
    dev, context, module = c_int(), c_void_p(), c_void_p()
    rc = drv.cuDeviceGet(byref(dev), index)
    if rc != 0:
        return rc
    rc = drv.cuDevicePrimaryCtxRetain(byref(context), dev)
    if rc != 0:
        return rc
    try:
        rc = drv.cuCtxPushCurrent_v2(context)
        if rc != 0:
            return rc
        try:
            rc = drv.cuModuleLoadData(byref(module), c_char_p(ptx))
            if rc == 0:
                drv.cuModuleUnload(module)
            return rc
        finally:
            drv.cuCtxPopCurrent_v2(byref(c_void_p()))
    finally:
        drv.cuDevicePrimaryCtxRelease_v2(dev)


def _ptx_target(cc: str, archs: list[str]) -> str:
    """The compute_XY the build's PTX has for this GPU, as the sm_XY target the driver compiles it to."""
    usable = [a for a in archs if a.startswith("compute_") and rules.code_for(cc, [a]) == "ptx"]
    best = max(usable, key=lambda a: rules.version_tuple(a) or (0,)) if usable else "compute_52"
    return best.replace("compute_", "sm_")


def cuda_layer(ctx: Context) -> Layer:
    layer, build = Layer("cuda_driver"), ctx.build
    try:
        drv = ctx.boundary.cuda()
    except OSError as err:
        return _libcuda_missing(ctx, layer, err)
    rc = drv.cuInit(0)
    if rc != 0:
        return _init_failed(ctx, layer, rc, None)
    version, count = c_int(), c_int()
    drv.cuDriverGetVersion(byref(version))
    driver_cuda = rules.cuda_from_int(version.value)
    rc = drv.cuDeviceGetCount(byref(count))
    if rc != 0 or count.value == 0:
        return _init_failed(ctx, layer, rc, count.value)
    devices = _devices(drv, count.value)
    ctx.cuda = {"driver_cuda": driver_cuda, "devices": devices}
    layer.facts = dict(ctx.cuda)
    layer.status = OK
    layer.summary = f"cuInit OK, driver CUDA {driver_cuda}, {count.value} device(s)"
    if not (build.cuda and build.gpu_capable):
        return layer
    for index, cc in ctx.compute_capabilities():
        how = rules.code_for(cc, build.archs) if build.archs else None
        needs_ptx = how == "ptx"
        verdict = rules.driver_verdict(driver_cuda, build.cuda, needs_ptx)
        layer.facts[f"gpu{index}_build"] = {"code": how, "verdict": verdict}
        isa = rules.ptx_isa(build.cuda)
        jit = (
            load_ptx(drv, index, ptx_kernel(isa, _ptx_target(cc, build.archs))) if needs_ptx and isa else None
        )
        if needs_ptx:
            layer.facts[f"gpu{index}_ptx_jit"] = {
                "isa": isa,
                "result": None if jit is None else _error(jit)["name"] if jit else "OK",
            }
        if verdict["ok"] is False:
            evidence = f"; a PTX {isa} test kernel failed with {_error(jit)['name']}" if jit else ""
            return layer.broken(
                f"{build.framework} {build.version} was built with CUDA {build.cuda}: "
                f"{verdict['why']}{evidence}",
                f"upgrade the NVIDIA driver to {verdict['needs']}: "
                f"{upgrade_driver(verdict.get('min_driver'))}",
                summary=f"driver CUDA {driver_cuda} too old for GPU {index} (cc {cc})",
            )
        if jit:
            err = _error(jit)
            return layer.broken(
                f"GPU {index} (cc {cc}) runs {build.framework}'s PTX and the driver failed to JIT a PTX "
                f"{isa} test kernel: {err['name']} ({jit}): {err['cause']}",
                f"{err['remedy']}: {upgrade_driver(rules.min_driver_for_cuda(build.cuda))}",
            )
        if verdict["ok"] is None:
            layer.notes.append(verdict["why"])
        elif needs_ptx:
            layer.notes.append(
                f"GPU {index} (cc {cc}) runs the build's PTX (JIT-compiled on first start; test kernel OK)"
            )
    layer.summary += f"; {build.framework} {build.version} built with CUDA {build.cuda}: the driver runs it"
    return layer
