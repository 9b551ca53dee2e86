"""Run the layers bottom-up and stop at the first broken one (the health layer's faults do not stop the layers
above, and the container layer always runs: see gpu_doctor.model). No probe can crash the diagnosis: an
unexpected exception inside a probe makes that layer BROKEN with the exception's text."""

from __future__ import annotations

import time
from collections.abc import Callable

from gpu_doctor import containers, cuda, framework, hardware, libraries, nvml
from gpu_doctor.backends import BACKENDS, active_backend
from gpu_doctor.build import installed_build
from gpu_doctor.context import Context
from gpu_doctor.model import ALWAYS_RUN, BROKEN, INDEPENDENT, LAYERS, NA, NOT_CHECKED, Diagnosis, Layer
from gpu_doctor.safe_read import READ_TIMEOUT_S
from gpu_doctor.system import Boundary, current

PROBES: dict[str, Callable[[Context], Layer]] = {
    "hardware": hardware.hardware,
    "kernel_module": hardware.kernel_module,
    "device_nodes": hardware.device_nodes,
    "nvml": nvml.nvml_layer,
    "health": nvml.health_layer,
    "cuda_driver": cuda.cuda_layer,
    "cuda_libraries": libraries.libraries_layer,
    "memory": nvml.memory_layer,
    "framework": framework.framework_layer,
    "compute": framework.compute_layer,
    "containers": containers.containers_layer,
}


class BadBackend(ValueError):
    """KERAS_BACKEND / --backend names no supported framework (bad input: exit 2)."""


def backend_name(backend: str | None = None, env: dict[str, str] | None = None) -> str:
    name = backend or active_backend(env)
    if name not in BACKENDS:
        raise BadBackend(f"backend {name!r} is not one of {', '.join(BACKENDS)}")
    return name


def diagnose(
    boundary: Boundary | None = None,
    backend: str | None = None,
    ask_framework: bool = True,
    ask_compute: bool = True,
) -> Diagnosis:
    """The layered diagnosis of this machine (or of ``boundary``). ``ask_framework`` imports the framework to
    list its GPUs; ``ask_compute`` runs the small GPU computations (both only when the layers below work)."""
    started = time.perf_counter()
    b = boundary or current()
    name = backend_name(backend, dict(b.env))
    build = installed_build(name, b.metadata, b.prefix, b.env)
    ctx = Context(b, name, build, ask_framework, ask_compute and ask_framework)
    layers: list[Layer] = []
    broken: Layer | None = None
    gpu_found = True
    for key, title in LAYERS:
        if broken is not None and key not in ALWAYS_RUN:
            layer = Layer(key, NOT_CHECKED, summary=f"the {broken.title} layer below is broken")
        elif not gpu_found:
            layer = Layer(key, NA, summary="no NVIDIA GPU")
        else:
            try:
                layer = PROBES[key](ctx)
            except Exception as err:  # a probe bug or an unforeseen OS answer: a clear failure, never a crash
                layer = Layer(key).broken(
                    f"the {title} probe itself failed: {type(err).__name__}: {err}",
                    "report this with the output of: python -m smoke_tests doctor --json",
                )
            if key == "hardware" and layer.status == NA:
                gpu_found = False
        layers.append(layer)
        if layer.status == BROKEN and broken is None and key not in INDEPENDENT:
            broken = layer
    if b.stalls:  # a wedged driver or device: what the layers read of it is missing, so say so first
        stall = (
            f"{len(b.stalls)} file(s) did not answer within {READ_TIMEOUT_S:g} s, a wedged driver or device? "
            f"({', '.join(b.stalls[:3])}; see sudo dmesg)"
        )
        layers[0].summary = f"{layers[0].summary}; {stall}"
        layers[0].notes.append(stall)
    no_gpu_reason = None if gpu_found else layers[0].summary.removeprefix("no NVIDIA GPU found: ")
    picture = ctx.nvml or {
        "available": False,
        "reason": f"no NVIDIA GPU found: {no_gpu_reason}"
        if no_gpu_reason
        else broken.cause
        if broken
        else None,
        "gpus": [],
    }
    return Diagnosis(
        layers=layers,
        gpu_found=gpu_found,
        no_gpu_reason=no_gpu_reason,
        backend=name,
        nvml=picture,
        staged_root=str(b.root) if b.staged else None,
        duration_s=round(time.perf_counter() - started, 2),
    )
