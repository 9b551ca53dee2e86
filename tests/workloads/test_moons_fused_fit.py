"""workloads/training/fused_fit.py trains exactly as `model.fit` does: the same batches in the same order give
the same weights, losses and validation figures, on TensorFlow and JAX (each backend in its own
interpreter)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from tests.conftest import REPO

pytestmark = pytest.mark.slow  # an interpreter and a framework import per backend

# Two epochs of the moons model from the same initial weights: fused_fit with its own shuffling, and fit
# (shuffle off) on those very permutations. Prints the largest weight difference and both histories.
SCRIPT = """
import json
import numpy as np
import keras
from workloads.recipes import moons
from workloads.training.fused_fit import fused_fit

cfg = moons.MoonsConfig(epochs=2)
x, x_val, y, y_val = moons.load_data(cfg)
keras.utils.set_random_seed(0)
fused, plain = moons.build_model(cfg), moons.build_model(cfg)
start = fused.get_weights()
plain.set_weights(start)
history = fused_fit(fused, x, y, batch_size=cfg.batch_size, epochs=cfg.epochs, validation_data=(x_val, y_val),
                    seed=7)
rng = np.random.default_rng(7)
logs = []
for _ in range(cfg.epochs):
    order = rng.permutation(len(x))
    h = plain.fit(x[order], y[order], batch_size=cfg.batch_size, epochs=1, shuffle=False,
                  validation_data=(x_val, y_val), verbose=0)
    logs.append({k: v[0] for k, v in h.history.items()})
diff = max(float(np.abs(a - b).max()) for a, b in zip(fused.get_weights(), plain.get_weights()))
moved = max(float(np.abs(a - b).max()) for a, b in zip(fused.get_weights(), start))
print(json.dumps({"diff": diff, "moved": moved, "fused": history.history,
                  "plain": {k: [e[k] for e in logs] for k in logs[0]}}))
"""


@pytest.mark.parametrize("backend", ["tensorflow", "jax"])
def test_fused_fit_trains_as_fit_does(backend: str) -> None:
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.run([sys.executable, "-c", SCRIPT], cwd=REPO, env=env, capture_output=True, text=True,
                          timeout=300, check=False)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["moved"] > 1e-3  # trained, and the model's variables hold it (JAX: written back at the end)
    assert out["diff"] < 1e-5, out
    assert set(out["fused"]) == {"loss", "accuracy", "val_loss", "val_accuracy"}
    for key, values in out["plain"].items():
        assert out["fused"][key] == pytest.approx(values, rel=1e-4, abs=1e-6), key
