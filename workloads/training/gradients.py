"""One gradient helper for the three Keras backends (Keras 3 has no backend-independent `grad`).

`value_and_grad(fn, x)` returns `fn(x)` (a scalar) and d fn / d x, as NumPy arrays. The visualizations
(filter patterns, Grad-CAM) only ever need the gradient of a scalar with respect to one input tensor.
"""

from __future__ import annotations

from collections.abc import Callable

import keras
import numpy as np


def value_and_grad(fn: Callable, x: np.ndarray) -> tuple[float, np.ndarray]:
    """`(fn(x), grad)` for a function `fn` of one tensor returning a scalar, on the active backend."""
    backend = keras.backend.backend()
    x = np.asarray(x, dtype="float32")
    if backend == "tensorflow":
        import tensorflow as tf

        tx = tf.convert_to_tensor(x)
        with tf.GradientTape() as tape:
            tape.watch(tx)
            value = fn(tx)
        grad = tape.gradient(value, tx)
        if grad is None:  # the output does not depend on x
            grad = tf.zeros_like(tx)
        return float(value), grad.numpy()
    if backend == "jax":
        import jax

        value, grad = jax.value_and_grad(fn)(jax.numpy.asarray(x))
        return float(value), np.asarray(grad)
    if backend == "torch":
        import torch

        # convert_to_tensor puts it on Keras's device (CUDA when there is one)
        tx = keras.ops.convert_to_tensor(x).detach().requires_grad_(True)
        value = fn(tx)
        (grad,) = torch.autograd.grad(value, tx, allow_unused=True)
        grad = torch.zeros_like(tx) if grad is None else grad
        return float(value.detach().cpu()), grad.detach().cpu().numpy()
    raise NotImplementedError(f"no gradient branch for the {backend!r} backend")
