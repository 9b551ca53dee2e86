"""The CUDA driver API layer, through ctypes on libcuda.so.1: cuInit's error code, the devices CUDA shows (by
ordinal, matched to NVML's GPUs by PCI bus id: CUDA orders them fastest first and after CUDA_VISIBLE_DEVICES,
NVML by bus), the driver's CUDA version against the framework build, and (when a GPU needs the build's PTX) a
one-line PTX kernel JIT-compiled by the driver on that GPU's own ordinal, which is exactly what it will need.
Every driver call is bounded in time (gpu_doctor.bounded)."""

from __future__ import annotations

from ctypes import byref, c_char_p, c_int, c_void_p, create_string_buffer
from typing import Any

from gpu_doctor import bounded, devices, rules
from gpu_doctor.build import Build
from gpu_doctor.context import Context, label
from gpu_doctor.model import OK, Layer

CC_MAJOR, CC_MINOR = 75, 76  # CU_DEVICE_ATTRIBUTE_COMPUTE_CAPABILITY_MAJOR / _MINOR (cuda.h)
RECOMMENDED_BRANCH = rules.recommended_branch()  # rules.toml [driver], shared with Ansible's default
# What to run when a GPU stops answering the driver (the NVML layer says the same).
HUNG_REMEDY = (
    "sudo dmesg | grep -iE 'xid|nvrm' (Xid 119/120: GSP time-outs); sudo nvidia-bug-report.sh; reset the GPU "
    "(sudo nvidia-smi -r -i N) or reboot"
)


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


def _nvswitch(ctx: Context) -> bool:
    """An NVSwitch board (HGX/DGX): NVSwitch device nodes or the driver's nvswitch folder."""
    b = ctx.boundary
    return b.exists("proc/driver/nvidia-nvswitch") or any(b.path("dev").glob("nvidia-nvswitch*"))


def _hmm_on(ctx: Context) -> bool:
    """nvidia_uvm's HMM is on unless its uvm_disable_hmm parameter says otherwise."""
    value = ctx.boundary.read("sys/module/nvidia_uvm/parameters/uvm_disable_hmm")
    return value is None or value.strip().upper() not in ("Y", "1")


def _visible_devices_explained(ctx: Context, layer: Layer, visible: str) -> Layer:
    nvml_gpus = ctx.nvml.get("gpus", [])
    if rules.hides_all_gpus(visible):
        # Source: tensorflow/tensorflow#26460 (CUDA_VISIBLE_DEVICES='' -> cuInit CUDA_ERROR_NO_DEVICE).
        return layer.broken(
            f"CUDA_VISIBLE_DEVICES={visible!r} hides every GPU from CUDA programs",
            "unset CUDA_VISIBLE_DEVICES (or set it to 0)",
            summary="CUDA sees no GPU",
        )
    # Source: qubvel-org/segmentation_models.pytorch#289 (an index past the last GPU).
    shown = devices.visible(nvml_gpus, ctx.boundary.env)
    first = (visible.split(",")[0] or "").strip()
    what = (
        "a MIG device that does not exist (or MIG is off on its GPU)"
        if first.upper().startswith("MIG-")
        else "no GPU UUID here (a UUID or prefix must name one GPU)"
        if first.upper().startswith("GPU-")
        else f"no GPU that exists (NVML sees {len(nvml_gpus)}: indices 0..{max(len(nvml_gpus) - 1, 0)})"
    )
    uuids = ", ".join(str(g.get("uuid")) for g in nvml_gpus) or "none"
    return layer.broken(
        f"CUDA_VISIBLE_DEVICES={visible!r} names {what}; {shown.explain()} (NVML's GPU UUIDs: {uuids})",
        "set CUDA_VISIBLE_DEVICES to existing indices or to UUIDs from nvidia-smi -L, or unset it",
        summary="CUDA sees no GPU",
    )


def _init_failed(ctx: Context, layer: Layer, rc: int, devices_seen: int | None) -> Layer:
    env = ctx.boundary.env
    visible = env.get("CUDA_VISIBLE_DEVICES")
    if (rc == 100 or devices_seen == 0) and visible is not None:
        return _visible_devices_explained(ctx, layer, visible)
    if rc == 0 and devices_seen == 0:
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
    if rc == 802 and not _nvswitch(ctx):
        cause, remedy = f"cuInit: {err['name']} ({rc}): {err['no_nvswitch_cause']}", err["no_nvswitch_remedy"]
    if rc == 3 and ctx.kernel_module_flavour == "open" and _hmm_on(ctx):
        cause, remedy = f"cuInit: {err['name']} ({rc}): {err['open_hmm_cause']}", err["open_hmm_remedy"]
    return layer.broken(cause, remedy, summary=f"cuInit failed: {err['name']}")


def _uuid(raw: bytes) -> str | None:
    if len(raw) < 16 or not any(raw[:16]):
        return None
    h = raw[:16].hex()
    return f"GPU-{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def device(drv: Any, ordinal: int) -> dict[str, Any] | None:
    """One CUDA device by ordinal: name, compute capability, PCI bus id, UUID."""
    dev, major, minor = c_int(), c_int(), c_int()
    name, bus, uuid = create_string_buffer(256), create_string_buffer(64), create_string_buffer(16)
    if drv.cuDeviceGet(byref(dev), ordinal) != 0:
        return None
    drv.cuDeviceGetAttribute(byref(major), CC_MAJOR, dev)
    drv.cuDeviceGetAttribute(byref(minor), CC_MINOR, dev)
    drv.cuDeviceGetName(name, 256, dev)
    bus_rc = drv.cuDeviceGetPCIBusId(bus, 64, dev)
    get_uuid = getattr(drv, "cuDeviceGetUuid_v2", None) or getattr(drv, "cuDeviceGetUuid", None)
    uuid_rc = get_uuid(uuid, dev) if get_uuid is not None else -1
    return {
        "ordinal": ordinal,
        "name": name.value.decode(errors="replace"),
        "compute_capability": f"{major.value}.{minor.value}",
        "pci_bus_id": devices.normalize_bus_id(bus.value) if bus_rc == 0 else None,
        "uuid": _uuid(uuid.raw) if uuid_rc == 0 else None,
    }


def ptx_kernel(isa: str, target: str) -> bytes:
    """The smallest valid PTX module of ISA ``isa`` for ``target`` (sm_90): what the driver must JIT."""
    return (
        f".version {isa}\n.target {target}\n.address_size 64\n\n.visible .entry "
        f"kw_doctor_probe()\n{{\n\tret;\n}}\n"
    ).encode()


def load_ptx(drv: Any, ordinal: int, ptx: bytes) -> int:
    """JIT-compile ``ptx`` on CUDA device ``ordinal`` in its primary context; the CUresult (0: it worked)."""
    dev, context, module = c_int(), c_void_p(), c_void_p()
    rc = drv.cuDeviceGet(byref(dev), ordinal)
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


def _needs_ptx(build: Build, cc: str) -> bool:
    return bool(build.cuda and build.gpu_capable and build.archs) and rules.code_for(cc, build.archs) == "ptx"


def probe_driver(drv: Any, build: Build, watch: bounded.Watch, limits: dict[str, float]) -> dict[str, Any]:
    """Every libcuda call of the layer, step by step under ``watch``: cuInit, the version, each device, and
    the PTX test kernel on each device that runs the build's PTX. A plain dict: the layer judges it."""
    watch.step("cuInit", limits["cuda_start_s"])
    watch.calling("cuInit")
    facts: dict[str, Any] = {"init": drv.cuInit(0)}
    if facts["init"] != 0:
        return facts
    version, count = c_int(), c_int()
    drv.cuDriverGetVersion(byref(version))
    facts["driver_cuda"] = rules.cuda_from_int(version.value)
    facts["count_rc"] = drv.cuDeviceGetCount(byref(count))
    facts["count"], facts["devices"], facts["jit"] = count.value, [], {}
    isa = rules.ptx_isa(build.cuda) if build.cuda else None
    for ordinal in range(count.value if facts["count_rc"] == 0 else 0):
        watch.step(f"CUDA GPU {ordinal}", limits["cuda_device_s"])
        dev = device(drv, ordinal)
        if dev is None:
            continue
        facts["devices"].append(dev)
        if isa and _needs_ptx(build, dev["compute_capability"]):
            watch.calling("cuModuleLoadData")
            target = _ptx_target(dev["compute_capability"], build.archs)
            facts["jit"][ordinal] = {"isa": isa, "rc": load_ptx(drv, ordinal, ptx_kernel(isa, target))}
    return facts


def _unanswered(layer: Layer, hung: bounded.Unanswered) -> Layer:
    where = f" (in {hung.call})" if hung.call else ""
    return layer.broken(
        f"{hung.what} did not answer the CUDA driver within {hung.budget_s:g} s{where}: a firmware (GSP) "
        "hang, or a driver stuck after an error?",
        HUNG_REMEDY,
        summary=f"{hung.what} did not answer within {hung.budget_s:g} s",
    )


def _ptx_note(build: Build, who: str, cc: str) -> str:
    """What running the build's PTX costs, and how to avoid it."""
    return (
        f"{who} (cc {cc}) has no native code in {build.framework} {build.version}: the driver "
        f"JIT-compiles its {_ptx_target(cc, build.archs).replace('sm_', 'compute_')} PTX (test kernel OK). "
        "The first run compiles every kernel it uses, which TensorFlow warns 'could take 30 minutes or "
        "longer' (tensorflow/tensorflow#62320); the driver keeps them in ~/.nv/ComputeCache: set "
        "CUDA_CACHE_MAXSIZE=4294967296 so they all fit, keep that folder (a volume for a container), or use "
        "native code: KERAS_BACKEND=jax"
    )


def cuda_layer(ctx: Context) -> Layer:
    layer, build = Layer("cuda_driver"), ctx.build
    try:
        drv = ctx.boundary.cuda()
    except OSError as err:
        return _libcuda_missing(ctx, layer, err)
    limits = rules.timeouts(ctx.boundary.timeouts)
    try:
        facts = bounded.run(
            lambda watch: probe_driver(drv, build, watch, limits), limits["cuda_start_s"], "CUDA"
        )
    except bounded.Unanswered as hung:
        return _unanswered(layer, hung)
    if facts["init"] != 0:
        return _init_failed(ctx, layer, facts["init"], None)
    if facts["count_rc"] != 0 or facts["count"] == 0:
        return _init_failed(ctx, layer, facts["count_rc"], facts["count"])
    found, driver_cuda, nvml_gpus = facts["devices"], facts["driver_cuda"], ctx.nvml.get("gpus", [])
    devices.match_cuda_devices(found, nvml_gpus)
    ctx.cuda = {"driver_cuda": driver_cuda, "devices": found}
    layer.facts = {"driver_cuda": driver_cuda, "devices": found, "jit": facts["jit"]}
    layer.status = OK
    shown = ctx.visible_gpus()
    visible = ctx.boundary.env.get("CUDA_VISIBLE_DEVICES")
    pinned = f" of {len(nvml_gpus)}, CUDA_VISIBLE_DEVICES={visible!r}" if visible is not None else ""
    layer.summary = f"cuInit OK, driver CUDA {driver_cuda}, {len(found)} device(s){pinned}: " + "; ".join(
        f"{g['label']}" for g in shown
    )
    unmatched = [d for d in found if d.get("nvml_index") is None and nvml_gpus]
    if unmatched:
        layer.notes.append(
            "CUDA shows device(s) NVML does not list by bus id: "
            + ", ".join(f"ordinal {d['ordinal']} ({d.get('pci_bus_id')})" for d in unmatched)
        )
    if not (build.cuda and build.gpu_capable):
        return layer
    for gpu in shown:
        cc, who = gpu["compute_capability"], gpu["label"]
        needs_ptx = _needs_ptx(build, cc)
        verdict = rules.driver_verdict(driver_cuda, build.cuda, needs_ptx)
        jit = facts["jit"].get(gpu["ordinal"])
        rc = jit["rc"] if jit else None
        layer.facts[f"cuda{gpu['ordinal']}_build"] = {"code": rules.code_for(cc, build.archs) if build.archs
                                                      else None, "verdict": verdict}  # fmt: skip
        if verdict["ok"] is False:
            evidence = f"; a PTX {jit['isa']} test kernel failed with {_error(rc)['name']}" if rc else ""
            return layer.broken(
                f"{build.framework} {build.version} was built with CUDA {build.cuda}: "
                f"{verdict['why']}{evidence}",
                f"upgrade the NVIDIA driver to {verdict['needs']}: "
                f"{upgrade_driver(verdict.get('min_driver'))}",
                summary=f"driver CUDA {driver_cuda} too old for {who} (cc {cc})",
            )
        if rc:
            err = _error(rc)
            return layer.broken(
                f"{who} (cc {cc}) runs {build.framework}'s PTX and the driver failed to JIT a PTX "
                f"{jit['isa']} test kernel: {err['name']} ({rc}): {err['cause']}",
                f"{err['remedy']}: {upgrade_driver(rules.min_driver_for_cuda(build.cuda))}",
            )
        if verdict["ok"] is None:
            layer.notes.append(verdict["why"])
        elif needs_ptx:
            layer.notes.append(_ptx_note(build, who, cc))
    layer.summary += f"; {build.framework} {build.version} built with CUDA {build.cuda}: the driver runs it"
    return layer


__all__ = ["cuda_layer", "label", "upgrade_driver"]
