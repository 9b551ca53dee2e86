"""The few framework operations the checks need, for the active Keras backend (tensorflow, jax, torch).

Every timed function synchronizes the device before it returns, so wall-clock timing is honest.
"""

from __future__ import annotations

import functools
import importlib
from typing import Any

import numpy as np

from gpu_doctor.backends import active_backend
from gpu_doctor.framework import list_gpus

PRECISIONS = ("fp32", "tf32", "bf16")


def name() -> str:
    return active_backend()


def framework_version() -> str:
    mod = __import__({"tensorflow": "tensorflow", "jax": "jax", "torch": "torch"}[name()])
    return mod.__version__


@functools.cache
def _gpus() -> tuple[tuple[str, ...], str | None]:
    gpus, reason = list_gpus(name(), importlib.import_module)
    return tuple(gpus), reason


def gpu_devices() -> list[str]:
    """The GPUs the active framework can use (empty on a CPU-only machine)."""
    return list(_gpus()[0])


def gpu_reason() -> str | None:
    """The framework's own words when it has no GPU (JAX's backend error, TensorFlow's CPU-only build)."""
    return _gpus()[1]


def keras_device(kind: str) -> str:
    return f"{kind}:0"


def _operands(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.standard_normal((n, n), dtype=np.float32), rng.standard_normal((n, n), dtype=np.float32)


def matmul_numpy(a: np.ndarray, b: np.ndarray, device: str) -> np.ndarray:
    """a @ b computed by the framework on ``device`` ("gpu" or "cpu") with its default precision."""
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        with tf.device(f"/{device.upper()}:0"):
            return tf.linalg.matmul(tf.constant(a), tf.constant(b)).numpy()
    if backend == "jax":
        import jax

        dev = jax.devices(device)[0]
        return np.asarray(jax.jit(lambda x, y: x @ y)(jax.device_put(a, dev), jax.device_put(b, dev)))
    import torch

    dev = "cuda" if device == "gpu" else "cpu"
    return (torch.from_numpy(a).to(dev) @ torch.from_numpy(b).to(dev)).cpu().numpy()


def matmul_runner(n: int, precision: str, device: str, steps: int, seed: int = 0, index: int = 0) -> Any:
    """A callable that runs ``steps`` n x n matmuls in ``precision`` on ``device`` (its ``index``-th: JAX
    only, for the multi-GPU checks) and synchronizes."""
    a_np, b_np = _operands(n, seed)
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_tensor_float_32_execution(precision == "tf32")
        dtype = tf.bfloat16 if precision == "bf16" else tf.float32
        with tf.device(f"/{device.upper()}:0"):
            a, b = tf.cast(tf.constant(a_np), dtype), tf.cast(tf.constant(b_np), dtype)

        def run() -> None:
            with tf.device(f"/{device.upper()}:0"):
                for _ in range(steps):
                    c = tf.linalg.matmul(a, b)
                float(c[0, 0].numpy())  # waits for the stream

        return run
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        dev = jax.devices(device)[index]
        dtype = jnp.bfloat16 if precision == "bf16" else jnp.float32
        prec = {"fp32": "highest", "tf32": "tensorfloat32", "bf16": "default"}[precision]
        a, b = (jax.device_put(x, dev).astype(dtype) for x in (a_np, b_np))
        mm = jax.jit(lambda x, y: jnp.matmul(x, y, precision=prec))

        def run() -> None:
            for _ in range(steps):
                c = mm(a, b)
            c.block_until_ready()

        return run
    import torch

    dev = "cuda" if device == "gpu" else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = precision == "tf32"
    dtype = torch.bfloat16 if precision == "bf16" else torch.float32
    a, b = (torch.from_numpy(x).to(dev, dtype) for x in (a_np, b_np))

    def run() -> None:
        for _ in range(steps):
            c = a @ b
        if dev == "cuda":
            torch.cuda.synchronize()
        float(c[0, 0])

    return run


def h2d_runner(mib: int, steps: int, device: str = "gpu", index: int = 0) -> Any:
    """A callable copying a ``mib`` MiB host buffer to GPU 0 ``steps`` times, synchronized (on JAX, to any
    device: the multi-GPU checks)."""
    host = np.ones(mib * 2**20 // 4, dtype=np.float32)
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        def run() -> None:
            with tf.device("/GPU:0"):
                for _ in range(steps):
                    t = tf.identity(host)
                float(t[0].numpy())

        return run
    if backend == "jax":
        import jax

        dev = jax.devices(device)[index]

        def run() -> None:
            for _ in range(steps):
                t = jax.device_put(host, dev)
            t.block_until_ready()

        return run
    import torch

    pinned = torch.from_numpy(host).pin_memory()

    def run() -> None:
        for _ in range(steps):
            pinned.to("cuda", non_blocking=True)
        torch.cuda.synchronize()

    return run


def xla_compile_and_run(device: str, seed: int = 0) -> tuple[float, float]:
    """Compile a small function with XLA on ``device``; returns (xla result, plain result) to compare."""
    x = np.random.default_rng(seed).standard_normal((64, 64), dtype=np.float32)
    backend = name()
    if backend == "tensorflow":
        import tensorflow as tf

        def f(t: Any) -> Any:  # exp/tanh: XLA needs libdevice and ptxas for these on a GPU
            return tf.reduce_sum(tf.tanh(tf.linalg.matmul(t, t) * 0.01) * tf.exp(-tf.abs(t)))

        with tf.device(f"/{device.upper()}:0"):
            compiled = tf.function(f, jit_compile=True)
            return float(compiled(tf.constant(x))), float(f(tf.constant(x)))
    if backend == "jax":
        import jax
        import jax.numpy as jnp

        def g(t: Any) -> Any:  # exp/tanh: XLA needs libdevice and ptxas for these on a GPU
            return jnp.sum(jnp.tanh((t @ t) * 0.01) * jnp.exp(-jnp.abs(t)))

        arg = jax.device_put(x, jax.devices(device)[0])
        compiled = jax.jit(g).lower(arg).compile()
        with jax.disable_jit():
            plain = float(g(arg))
        return float(compiled(arg)), plain
    raise NotImplementedError("XLA compile check: n/a on the torch backend (it does not use XLA)")
