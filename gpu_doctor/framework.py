"""The framework and compute layers: the only ones that import TensorFlow, JAX or PyTorch, only when asked.

The framework layer first applies the build rules without importing anything (CPU-only build, compute
capability not in the build, a combination reported broken); then, when asked, imports the framework and
lists its GPUs, keeping the framework's own words when it finds none. The compute layer runs a matmul, a
convolution with its gradient (cuDNN) and an XLA-compiled function with exp/tanh (libdevice, ptxas) on GPU 0
and compares them with the CPU.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
import warnings
from collections.abc import Iterator
from typing import Any

from gpu_doctor import rules
from gpu_doctor.context import Context
from gpu_doctor.model import NA, OK, Layer

REL_TOLERANCE = 1e-2  # TF32 matmuls on Ampere+ differ from the CPU by ~1e-3


@contextlib.contextmanager
def captured_stderr(lines: list[str]) -> Iterator[None]:
    """Capture what C++ code writes to file descriptor 2 (TensorFlow's and XLA's logs) into ``lines``."""
    try:
        saved = os.dup(2)
    except OSError:
        yield
        return
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield
        finally:
            os.dup2(saved, 2)
            os.close(saved)
            tmp.seek(0)
            lines.extend(tmp.read().decode(errors="replace").splitlines())
            lines.extend(str(w.message) for w in caught)


def _relevant(lines: list[str]) -> list[str]:
    keep = re.compile(r"gpu|cuda|cudnn|dlopen|driver|device|ptx|plugin", re.IGNORECASE)
    return [line.strip() for line in lines if keep.search(line)][-8:]


def list_gpus(framework: str, import_module: Any) -> tuple[list[str], str | None]:
    """The GPUs the framework can use, and the framework's own reason when it has none."""
    if framework == "tensorflow":
        tf = import_module("tensorflow")
        if not tf.sysconfig.get_build_info().get("is_cuda_build"):
            return [], "this TensorFlow is a CPU-only build (is_cuda_build is False)"
        return [d.name for d in tf.config.list_physical_devices("GPU")], None
    if framework == "jax":
        jax = import_module("jax")
        try:
            return [str(d) for d in jax.devices("gpu")], None
        except RuntimeError as err:  # JAX's reason ("Unable to initialize backend 'cuda': ..."), kept whole
            return [], str(err)
    torch = import_module("torch")
    if not torch.cuda.is_available():
        return [], None  # torch's reason comes as a warning, captured with the logs
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())], None


def _static_rules(ctx: Context, layer: Layer) -> Layer | None:
    build = ctx.build
    if not build.version:
        return layer.broken(
            f"{build.framework} is not installed in this environment (KERAS_BACKEND={ctx.backend})",
            f"{build.install_gpu}, or pick an installed backend: KERAS_BACKEND=jax|torch|tensorflow",
            summary=f"{build.framework} missing",
        )
    if build.gpu_capable is False:
        # Sources: tensorflow/tensorflow#63362 (pip install tensorflow: no GPU), jax-ml/jax#29068.
        return layer.broken(
            f"{build.cpu_only_reason}: it cannot use the GPU",
            build.install_gpu,
            summary=f"{build.framework} {build.version}: CPU-only",
        )
    for index, cc in ctx.compute_capabilities():
        broken = rules.known_broken(build.framework, build.version, cc, build.archs)
        if broken:
            return layer.broken(
                f"GPU {index}: {broken['cause']}",
                broken["remedy"],
                summary=f"{build.framework} {build.version} on cc {cc}: reported broken",
            )
        if build.archs:
            how = rules.code_for(cc, build.archs)
            if how is None:
                return layer.broken(
                    f"GPU {index}'s compute capability {cc} is not in {build.framework} {build.version}'s "
                    f"build ({', '.join(build.archs)}): the GPU is too old for this wheel",
                    "use an older framework release that still supports this GPU, or another GPU",
                    summary=f"cc {cc} not in the build",
                )
            layer.facts[f"gpu{index}_code"] = how
    return None


def framework_layer(ctx: Context) -> Layer:
    layer, build = Layer("framework"), ctx.build
    layer.facts = {"backend": ctx.backend, "build": build.as_dict()}
    if _static_rules(ctx, layer) is not None:
        return layer
    code = ", ".join(f"GPU {k[3:].split('_')[0]}: {v}" for k, v in layer.facts.items() if k.endswith("_code"))
    what = f"{build.framework} {build.version}" + (
        f" (CUDA {build.cuda}{'; ' + code if code else ''})" if build.cuda else ""
    )
    if not ctx.ask_framework:
        layer.status, layer.summary = (
            OK,
            f"{what}: the build suits the GPU (not imported: checked by the rules only)",
        )
        return layer
    logs: list[str] = []
    try:
        with captured_stderr(logs):
            gpus, reason = list_gpus(build.framework, ctx.boundary.import_module)
    except Exception as err:
        return layer.broken(
            f"importing {build.framework} failed: {type(err).__name__}: {err}",
            f"reinstall it: {build.install_gpu}",
        )
    layer.facts["gpus"], layer.facts["log"] = gpus, _relevant(logs)
    if not gpus:
        said = reason or "; ".join(_relevant(logs)) or "no message"
        blame = rules.blame_for_error(said)
        where = f" (points at the {blame.replace('_', ' ')} layer)" if blame else ""
        return layer.broken(
            f"{build.framework} lists no GPU although the layers below work. It says: {said}{where}",
            f"{build.install_gpu}; see the message above",
            summary=f"{build.framework} {build.version}: no GPU",
        )
    layer.status = OK
    layer.summary = f"{what}: {len(gpus)} GPU(s): {', '.join(gpus)}"
    return layer


# --- Compute ------------------------------------------------------------------------------------------------
def _inputs() -> dict[str, Any]:
    import numpy as np

    rng = np.random.default_rng(0)
    return {
        "a": rng.standard_normal((256, 256), dtype=np.float32),
        "img": rng.standard_normal((4, 16, 16, 3), dtype=np.float32),
        "kernel": rng.standard_normal((3, 3, 3, 8), dtype=np.float32),
    }


def _tensorflow(tf: Any, x: dict[str, Any], device: str) -> dict[str, Any]:
    with tf.device(device):
        a = tf.constant(x["a"])
        img, kernel = tf.constant(x["img"]), tf.Variable(x["kernel"])
        matmul = tf.linalg.matmul(a, a).numpy()
        with tf.GradientTape() as tape:
            out = tf.reduce_sum(tf.nn.conv2d(img, kernel, 1, "SAME") ** 2)
        grad = tape.gradient(out, kernel).numpy()
        xla = tf.function(lambda t: tf.reduce_sum(tf.tanh(t) * tf.exp(-tf.abs(t))), jit_compile=True)(
            a
        ).numpy()
    return {"matmul": matmul, "convolution": grad, "xla": xla}


def _jax(jax: Any, x: dict[str, Any], device: str) -> dict[str, Any]:
    jnp, dev = jax.numpy, jax.devices(device)[0]
    a, img, kernel = (jax.device_put(x[k], dev) for k in ("a", "img", "kernel"))

    def conv_loss(k: Any) -> Any:
        out = jax.lax.conv_general_dilated(img, k, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jnp.sum(out**2)

    return {
        "matmul": jax.device_get(jnp.matmul(a, a, precision="highest")),
        "convolution": jax.device_get(jax.jit(jax.grad(conv_loss))(kernel)),
        "xla": jax.device_get(jax.jit(lambda t: jnp.sum(jnp.tanh(t) * jnp.exp(-jnp.abs(t))))(a)),
    }


def _torch(torch: Any, x: dict[str, Any], device: str) -> dict[str, Any]:
    dev = "cuda" if device == "gpu" else "cpu"
    a = torch.from_numpy(x["a"]).to(dev)
    img = torch.from_numpy(x["img"]).permute(0, 3, 1, 2).to(dev)
    kernel = torch.from_numpy(x["kernel"]).permute(3, 2, 0, 1).to(dev).requires_grad_(True)
    (torch.nn.functional.conv2d(img, kernel, padding=1) ** 2).sum().backward()
    return {
        "matmul": (a @ a).cpu().numpy(),
        "convolution": kernel.grad.cpu().numpy(),
        "xla": (torch.tanh(a) * torch.exp(-a.abs()))
        .sum()
        .cpu()
        .numpy(),  # torch has no XLA: elementwise math
    }


COMPUTE = {"tensorflow": _tensorflow, "jax": _jax, "torch": _torch}
DEVICES = {"tensorflow": ("/GPU:0", "/CPU:0"), "jax": ("gpu", "cpu"), "torch": ("gpu", "cpu")}


def explain_failure(text: str, nvml_picture: dict[str, Any], install_gpu: str) -> tuple[str, str]:
    """Cause and remedy for a framework error, using what the layers below found: when the error is about
    memory or cuDNN's start and other processes hold GPU memory, they are named (not missing libraries)."""
    blame = rules.blame_for_error(text)
    first = text.strip().splitlines()[0][:300] if text.strip() else "no message"
    if blame == "memory":
        held = [
            (g["index"], p)
            for g in nvml_picture.get("gpus", [])
            for p in (g.get("processes") if isinstance(g.get("processes"), list) else [])
        ]
        if held:
            who = ", ".join(f"PID {p['pid']} on GPU {i} ({p['used_mib']} MiB)" for i, p in held)
            return (
                f"{first} -> the GPU memory is held by other processes: {who}",
                "stop them (nvidia-smi), or let the framework grow its memory: "
                "TF_FORCE_GPU_ALLOW_GROWTH=true / XLA_PYTHON_CLIENT_PREALLOCATE=false",
            )
        return (
            f"{first} -> cuDNN/cuBLAS could not get GPU memory",
            "nvidia-smi (memory in use); TF_FORCE_GPU_ALLOW_GROWTH=true / "
            "XLA_PYTHON_CLIENT_PREALLOCATE=false",
        )
    if blame == "cuda_libraries":
        return (
            f"{first} -> a CUDA library is missing or the wrong version",
            f"{install_gpu}; unset LD_LIBRARY_PATH",
        )
    if blame == "cuda_driver":
        return (
            f"{first} -> the driver cannot run this build's GPU code",
            "upgrade the NVIDIA driver (make provision)",
        )
    return first, "see the full message: python -m smoke_tests doctor --json"


def compute_layer(ctx: Context) -> Layer:
    layer = Layer("compute")
    if not ctx.ask_compute:
        layer.status, layer.summary = NA, "not run (asked for the lower layers only)"
        return layer
    import numpy as np

    framework = ctx.build.framework
    module = ctx.boundary.import_module(
        {"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[framework]
    )
    gpu, cpu = DEVICES[framework]
    x = _inputs()
    logs: list[str] = []
    try:
        with captured_stderr(logs):
            on_gpu = COMPUTE[framework](module, x, gpu)
    except Exception as err:
        text = f"{type(err).__name__}: {err}\n" + "\n".join(_relevant(logs))
        cause, remedy = explain_failure(text, ctx.nvml, ctx.build.install_gpu)
        return layer.broken(cause, remedy, summary="a GPU computation failed")
    on_cpu = COMPUTE[framework](module, x, cpu)
    errors = {}
    for name, value in on_gpu.items():
        ref = np.asarray(on_cpu[name], dtype=np.float64)
        errors[name] = float(
            np.linalg.norm(np.asarray(value, dtype=np.float64) - ref) / max(np.linalg.norm(ref), 1e-30)
        )
    layer.facts = {"relative_error": errors}
    wrong = {k: v for k, v in errors.items() if not v <= REL_TOLERANCE}
    if wrong:
        return layer.broken(
            f"GPU results differ from the CPU: {', '.join(f'{k} {v:.1e}' for k, v in wrong.items())} "
            f"(tolerance {REL_TOLERANCE:.0e})",
            "check the health layer (ECC) and the driver; rerun to see if it repeats",
        )
    layer.status = OK
    layer.summary = (
        "matmul, convolution + gradient (cuDNN), XLA exp/tanh on GPU 0 match the CPU ("
        + ", ".join(f"{k} {v:.0e}" for k, v in errors.items())
        + ")"
    )
    return layer
