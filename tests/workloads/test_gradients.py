"""The gradient helper on TensorFlow (this process) and JAX (a fresh interpreter: one backend per process)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np

from tests.conftest import REPO

# Analytic checks: d/dx sum(w * x^2) = 2 w x; a Dense layer's input gradient is its kernel summed.
CHECK = textwrap.dedent(
    """
    import numpy as np, keras
    from workloads.gradients import value_and_grad
    x = np.arange(1, 7, dtype="float32").reshape(2, 3) / 4
    w = np.array([1.0, -2.0, 0.5], dtype="float32")
    value, grad = value_and_grad(lambda t: keras.ops.sum(w * t**2), x)
    assert abs(value - float((w * x**2).sum())) < 1e-5, value
    assert np.allclose(grad, 2 * w * x, atol=1e-5), grad
    dense = keras.layers.Dense(4)
    dense.build((None, 3))
    _, g = value_and_grad(lambda t: keras.ops.sum(dense(t)), x)
    kernel = keras.ops.convert_to_numpy(dense.kernel)
    assert np.allclose(g, np.tile(kernel.sum(axis=1), (2, 1)), atol=1e-5), g
    # the visualizations' use: a gradient through a model's layers, zero where the output ignores x
    _, z = value_and_grad(lambda t: keras.ops.sum(t[:, :1]), x)
    assert np.allclose(z[:, 1:], 0) and np.allclose(z[:, :1], 1), z
    print("GRADIENTS OK", keras.backend.backend())
    """
)


def test_value_and_grad_tensorflow():
    import keras

    assert keras.backend.backend() == "tensorflow"
    exec(CHECK, {})  # the same checks as the JAX test below


def test_value_and_grad_jax():
    proc = subprocess.run(
        [sys.executable, "-c", CHECK],
        cwd=REPO,
        env={**__import__("os").environ, "KERAS_BACKEND": "jax", "JAX_PLATFORMS": "cpu"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "GRADIENTS OK jax" in proc.stdout


def test_gradient_wrong_direction_is_caught():
    """A sanity check that the analytic comparison can fail: the negated gradient does not match."""
    import keras

    from workloads.gradients import value_and_grad

    x = np.ones((1, 3), dtype="float32")
    _, grad = value_and_grad(lambda t: keras.ops.sum(3 * t), x)
    assert np.allclose(grad, 3) and not np.allclose(-grad, 3)
