"""The gradient helper on TensorFlow (this process), JAX and PyTorch (a fresh interpreter each: one backend
per process)."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import textwrap

import pytest

from tests.conftest import REPO

# Analytic checks: d/dx sum(w * x^2) = 2 w x; a Dense layer's input gradient is its kernel summed.
CHECK = textwrap.dedent(
    """
    import numpy as np, keras
    from workloads.training.gradients import value_and_grad
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


def run_check(backend: str) -> subprocess.CompletedProcess:
    """CHECK in a fresh interpreter on `backend` (a process picks its Keras backend once), on the CPU."""
    env = {**os.environ, "KERAS_BACKEND": backend, "JAX_PLATFORMS": "cpu", "CUDA_VISIBLE_DEVICES": ""}
    return subprocess.run(
        [sys.executable, "-c", CHECK], cwd=REPO, env=env, capture_output=True, text=True, timeout=300
    )


def test_value_and_grad_jax():
    proc = run_check("jax")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "GRADIENTS OK jax" in proc.stdout


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None,
    reason="torch is the optional `torch` extra (a 527 MB wheel plus CUDA libraries on PyPI, no CPU-only "
    "wheel there): not in the test environment; runs where `uv sync --extra torch` installed it",
)
def test_value_and_grad_torch():
    proc = run_check("torch")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "GRADIENTS OK torch" in proc.stdout


def test_gradient_wrong_direction_is_caught(monkeypatch):
    """Negative control: the analytic checks above fail for a helper that returns the negated gradient."""
    from workloads.training import gradients

    right = gradients.value_and_grad

    def wrong_direction(fn, x):
        value, grad = right(fn, x)
        return value, -grad

    monkeypatch.setattr(gradients, "value_and_grad", wrong_direction)
    with pytest.raises(AssertionError):
        exec(CHECK, {})
