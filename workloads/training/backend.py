"""Choosing the Keras backend, seeding, determinism and naming the device a run uses.

The backend must be chosen before `keras` is first imported, so the CLI calls `select_backend` first.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from gpu_doctor.backends import BACKENDS, active_backend, keep_tensorflow_reasons


def select_backend(name: str | None) -> str:
    """Set KERAS_BACKEND (and TensorFlow's C++ log level, gpu_doctor.backends) before Keras is imported."""
    from workloads.errors import InputError

    name = name or active_backend()
    if name not in BACKENDS:
        raise InputError(f"unknown backend {name!r}: choose one of {', '.join(BACKENDS)}")
    os.environ["KERAS_BACKEND"] = name
    keep_tensorflow_reasons()
    import keras

    if keras.backend.backend() != name:
        raise InputError(
            f"Keras was already imported with backend {keras.backend.backend()!r}; cannot switch to {name!r}"
        )
    try:
        __import__(name)
    except ImportError:
        from gpu_doctor import environment

        remedy = environment.install(name, Path(sys.prefix), os.environ)
        raise InputError(f"backend {name!r} is not installed in this environment: {remedy}") from None
    return name


def seed_everything(seed: int, deterministic: bool = False) -> None:
    """Seed Python, NumPy and the backend; with `deterministic`, also ask for deterministic kernels."""
    import keras

    keras.utils.set_random_seed(seed)
    if not deterministic:
        return
    backend = keras.backend.backend()
    if backend == "tensorflow":
        import tensorflow as tf

        tf.config.experimental.enable_op_determinism()
    elif backend == "torch":
        import torch

        torch.use_deterministic_algorithms(True)
    # JAX is deterministic on CPU; on GPU XLA_FLAGS=--xla_gpu_deterministic_ops=true must be set before start.


def device_description() -> str:
    """The device Keras trains on, for the summary: 'GPU:0 (NVIDIA H100 80GB HBM3)' or 'CPU'."""
    import keras

    backend = keras.backend.backend()
    try:
        if backend == "tensorflow":
            import tensorflow as tf

            gpus = tf.config.list_physical_devices("GPU")
            if gpus:
                details = tf.config.experimental.get_device_details(gpus[0])
                return f"GPU:0 ({details.get('device_name', 'unknown')})"
        elif backend == "jax":
            import jax

            device = jax.devices()[0]
            if device.platform == "gpu":
                return f"GPU:0 ({device.device_kind})"
        elif backend == "torch":
            import torch

            if torch.cuda.is_available():
                return f"GPU:0 ({torch.cuda.get_device_name(0)})"
    except Exception:
        pass
    return "CPU"
